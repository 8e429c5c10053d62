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
//	health_check.port                      0: each server's own port (forward_port)
//	health_check.check_delay               3000 ms
//	health_check.check_timeout             1000 ms
//	health_check.check_max_retries         3 (fall); rise is 2
//	health_check.transient_check_delay     "0.500000000s"
//	http(s)_config.method, .uri, .code     GET, /, any 2xx or 3xx
//	acl.action.type                        allow
//	acl.action.redirect.type, .code        location, 302
//	acl.match.http_filter                  acl_http_filter_none
//	backend.lbkit.dns                      unset: the servers are pool's
//	backend.lbkit.dns.port                 the backend's forward_port (not with srv)
//	backend.lbkit.dns.server               the nameservers of /etc/resolv.conf
//	backend.lbkit.dns.interval             30000 ms (sooner when a TTL expires; at least 100)
//
// Beyond the seed, a backend's "lbkit" object carries per-server weights,
// backup servers and runtime states, or takes the servers from DNS
// ([DNSServers]: "dns": {"name", "srv", "server", "port", "interval"},
// exclusive with a non-empty pool), and a frontend's carries the limits of
// lb.Limits; an update that leaves the object out keeps the stored one.
//
// # Runtime
//
// A [Runtime] runs a document on lbkit's data path and is the [Applier] a
// [Manager] drives; its documentation says what Apply keeps and what it
// rebuilds. The document maps to the library so:
//
//	frontend                 an lb.TCPFrontend when its default backend's forward_protocol
//	                         is tcp, else an http.Server serving one lb.ReverseProxy;
//	                         listening at inbound_port on each RuntimeOptions.IPs
//	                         (through RuntimeOptions.Listen when set); the http.Server's
//	                         connection states also reach RuntimeOptions.ConnState
//	  certificate_ids        TLS offload (tlsmode), the certificate chosen by SNI, the
//	                         first listed the default; HTTP/2 through ALPN at L7
//	  timeout_client         ReverseProxy.ClientTimeout and the http.Server's IdleTimeout
//	                         (its ReadHeaderTimeout is the lesser of it and 10 s); at L4
//	                         TCPFrontend.HandshakeTimeout, at most 10 s (silences after
//	                         the handshake are the backend's timeout_tunnel)
//	  connection_rate_limit  lb.Limits ConnRate: new connections beyond the rate wait
//	                         in the listen backlog, none refused; lbkit's
//	                         max_connections, client_* the other Limits, client_rate
//	                         through RuntimeOptions.Shared's ClientRater when set
//	                         (lbproxy -redis: lb/redisrate, one rate for the fleet)
//	  enable_http3           lb/http3 on the UDP port of the same number, with Alt-Svc
//	  enable_access_logs     records to RuntimeOptions.AccessLog
//	lb.ssl_compatibility_level  the tlsmode profile of every TLS frontend
//	secrets.session_ticket_secret  tlsmode.TicketKeys with it as Secret: keys derived per
//	                         day (HKDF), rotated at the same instants on every instance
//	                         and kept seven days, so instances sharing the document
//	                         resume each other's sessions, across a failover too;
//	                         without it RuntimeOptions.Secrets', else random keys rotated
//	                         daily
//	backend                  an lb.Pool, shared by the frontends that use it
//	  pool, forward_port     servers named by IP, at IP:forward_port
//	  lbkit.dns              lb/dnsservers.Source driving the pool instead: servers
//	                         named IP:port, kept by address across resolutions and
//	                         across Apply; checks go to each server's port unless
//	                         health_check.port is set and differs from forward_port
//	  forward_port_algorithm balancer.ByName
//	  sticky_sessions        sticky.Cookie keyed by secrets.sticky_cookie_secret (else
//	                         RuntimeOptions.Secrets', else random per process), or for
//	                         table sticky.SourceIP, or RuntimeOptions.Shared's table
//	                         (lbproxy -redis: sticky/redistable) shared by instances
//	  health_check           health.Monitor: check_delay Interval, check_timeout Timeout,
//	                         check_max_retries Fall, rise 2, transient_check_delay
//	                         TransientInterval, port Port, check_send_proxy sends the
//	                         PROXY header (LOCAL) on checks; TCP and HTTP checks speak
//	                         the TLS of a bridging backend
//	  proxy_protocol         lb/proxyproto V1 or V2 (with the SSL TLV, and the CN)
//	  ssl_bridging           TLS to the servers (Pool.TLS at L4, https at L7), verified
//	                         against RuntimeOptions.TLSClientRoots unless
//	                         ignore_ssl_server_verify; host is the name sent and verified
//	  host                   ReverseProxy.ServerHost (the Host sent) at L7
//	  timeout_server         the wait for the response headers at L7
//	  timeout_connect, timeout_tunnel, timeout_queue, max_retries (0: none),
//	  redispatch_attempt_count, on_marked_down_action: the Pool's fields of those names
//	  max_connections        each server's MaxConns
//	  failover_host          lb.FailoverHost for the requests that find no server up;
//	                         traffic returns to the servers once one is up again
//	  lbkit.servers          weight (0 drains), backup, admin_state (drain, maint)
//	acl                      acl.Rules in index order, per frontend; several
//	                         http_filter_value of a regex filter are OR-ed
//	route                    host_header and path_begin: acl.Router, in document order;
//	                         sni: lb.Mux behind tlsmode.Passthrough (or Offload)
//	certificate              custom: ParseChain; letsencrypt: tlsmode.ACME, one
//	                         certificate per name (the common name obtained at Apply,
//	                         the others at their first handshake); Runtime.Certificate
//	                         reports the read-only fields; no wildcard names (HTTP-01
//	                         and TLS-ALPN-01 cannot issue them)
//
// Validate runs the same compilers as Apply (ACL rules with their redirect
// placeholders, Host routes with their subdomains, SNI patterns, each at
// most once per frontend), so that a valid document does not fail to
// compile in Apply.
package config
