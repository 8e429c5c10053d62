// Package config is the configuration model of one lbkit load balancer, in
// the vocabulary of the seed's public load-balancer API: a [Document] holds
// the load balancer, its backends (servers, algorithm, health check,
// stickiness, timeouts, TLS to the servers, PROXY protocol, retries),
// frontends (port, default backend, certificates, client timeout,
// connection rate, HTTP/3, access logs), ACLs, routes, certificates and
// subscribers, each in the JSON shape that API returns for it (field
// names, enum strings, durations in milliseconds or as "5.000000000s").
//
// [Load] parses a document strictly, applies the defaults and validates it
// as a whole; [Document.Validate] names every field that fails in a
// [FieldError]. A [Store] keeps a document: [FileStore] in one file,
// written atomically, and other implementations for shared stores, such
// as lb/config/etcdstore's, which keeps a fleet's document in etcd.
//
// # Defaults
//
// One canonical table. Where lbkit's specification names a value it wins;
// elsewhere the seed's console values apply (its clients disagree with
// each other: the console, Terraform and Kubernetes each have their own).
// [Document.ApplyDefaults] writes them into a document, and the API returns
// them so.
//
//	field                                  default
//	lb.ssl_compatibility_level             ssl_compatibility_level_intermediate (TLS 1.2 and 1.3)
//	frontend.timeout_client                300000 ms (5 min)
//	frontend.connection_rate_limit         unset: no limit (0 too)
//	frontend.enable_http3                  false
//	frontend.enable_access_logs            false
//	backend.forward_protocol               tcp
//	backend.forward_port_algorithm         roundrobin
//	backend.sticky_sessions                none
//	backend.proxy_protocol                 proxy_protocol_none (send_proxy_v2 true: proxy_protocol_v2)
//	backend.timeout_server                 300000 ms (5 min)
//	backend.timeout_connect                5000 ms
//	backend.timeout_tunnel                 900000 ms (15 min)
//	backend.timeout_queue                  "5.000000000s"
//	backend.on_marked_down_action          on_marked_down_action_none
//	backend.ssl_bridging                   false
//	backend.ignore_ssl_server_verify       false
//	backend.max_retries                    3 (connection failures, 0 to 32)
//	backend.redispatch_attempt_count       unset: every retry goes to another server;
//	                                       0: every retry stays on the same server;
//	                                       N: every Nth retry moves to another server
//	backend.max_connections                unset: no limit per server
//	backend.failover_host, backend.host    unset
//	health_check                           tcp_config when no kind is set
//	health_check.port                      the backend's forward_port
//	health_check.check_delay               3000 ms
//	health_check.check_timeout             1000 ms
//	health_check.check_max_retries         3 (fall); rise is 2
//	health_check.transient_check_delay     "0.500000000s"
//	http(s)_config.method, .uri, .code     GET, /, any 2xx or 3xx
//	acl.action.type                        allow
//	acl.action.redirect.type, .code        location, 302
//	acl.match.http_filter                  acl_http_filter_none
//
// Beyond the seed, a backend's "lbkit" object carries per-server weights,
// backup servers and runtime states, and a frontend's carries the limits of
// lb.Limits; an update that leaves the object out keeps the stored one.
package config
