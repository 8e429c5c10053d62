// Package lbkit is a library for embedding load balancing in Go programs.
//
// It implements the model of a managed cloud load balancer: frontends (TCP
// or HTTP) that accept clients, pools of upstream servers that serve them,
// balancing algorithms, health checks, sticky sessions, the three TLS modes
// (passthrough, offloading, bridging), PROXY protocol, ACLs and routes,
// and what makes it operable: statistics, Prometheus metrics, access logs
// and a live status page.
// Every piece is a small composable value that a host program wires into its
// own servers; nothing owns the process.
//
// # Packages
//
//   - [github.com/lbkit/lbkit/lb]: the hub. Server (an upstream), Pool (the
//     standard Backend), the Balancer, HealthChecker, Affinity and
//     HeaderFunc hooks, TCPFrontend (L4), ReverseProxy (L7), Mux, Switch
//     and Serve.
//   - [github.com/lbkit/lbkit/lb/proxyproto]: PROXY protocol v1 and v2
//     header writers for Pool.ProxyHeader, and a Listener that reads them
//     from trusted upstreams.
//   - [github.com/lbkit/lbkit/lb/lbtest]: conformance suite and helpers
//     for custom Balancers.
//   - [github.com/lbkit/lbkit/lb/demo]: demo backends and a throw-away CA,
//     for programs and tests.
//   - [github.com/lbkit/lbkit/lb/statuspage]: the live status page of
//     frontends, backends and servers (HTML and JSON), an http.Handler.
//   - [github.com/lbkit/lbkit/lb/metrics]: Prometheus exporter of the
//     statistics of pools and frontends, named as HAProxy's.
//   - [github.com/lbkit/lbkit/lb/accesslog]: access logs of the frontends'
//     records, as slog JSON or HAProxy's httplog/tcplog text, through a
//     non-blocking buffer to a file or syslog.
//   - [github.com/lbkit/lbkit/lb/http3]: HTTP/3 frontend over QUIC for
//     the ReverseProxy of an HTTPS frontend (same certificates, hooks and
//     drain), with Alt-Svc announcements; the only package that imports
//     quic-go.
//   - [github.com/lbkit/lbkit/lb/dnsservers]: a Pool's servers from DNS
//     (A/AAAA records at a port, or SRV records with ports, weights and
//     backups), re-resolved by interval and TTL, keeping the state of the
//     servers that stay and the last good set when DNS fails.
//   - [github.com/lbkit/lbkit/balancer]: round robin (smooth weighted),
//     least connections, first, random, power of two choices, consistent
//     hashing, ByName.
//   - [github.com/lbkit/lbkit/health]: active and passive health checks.
//   - [github.com/lbkit/lbkit/tlsmode]: passthrough, offloading and
//     bridging adapters; certificates.
//   - [github.com/lbkit/lbkit/sticky]: cookie and source-IP affinity;
//     [github.com/lbkit/lbkit/sticky/redistable]: the source-IP table
//     shared by a fleet of load balancers through Redis.
//   - [github.com/lbkit/lbkit/lb/redisrate]: a per-client rate limit
//     shared by a fleet through Redis, for lb.Limits.ClientRater. These
//     two are the only packages that import go-redis.
//   - [github.com/lbkit/lbkit/acl]: allow, deny and redirect rules; routes.
//
// The programs under examples/ run on loopback defaults; examples/lbproxy
// is the command-line load balancer.
//
// # Typical usage
//
//	pool := &lb.Pool{Name: "web", Balancer: &balancer.LeastConn{}}
//	if err := pool.Update([]lb.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80", Weight: 2}}); err != nil {
//		return err
//	}
//	proxy := &lb.ReverseProxy{Pool: pool}
//	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
//	ln, err := net.Listen("tcp", ":8080")
//	if err != nil {
//		return err
//	}
//	return lb.Serve(ctx, srv, ln, 30*time.Second, proxy)
//
// The packages depend on lb and never on each other's internals, so a custom
// algorithm, health check or adapter is a type implementing one small
// interface of lb.
package lbkit
