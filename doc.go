// Package lbkit is a library for embedding load balancing in Go programs.
//
// It implements the model of a managed cloud load balancer: frontends (TCP
// or HTTP) that accept clients, backends of servers that serve them,
// balancing algorithms, health checks, sticky sessions, the three TLS modes
// (passthrough, offloading, bridging), PROXY protocol, ACLs and routes.
// Every piece is a small composable value that a host program wires into its
// own servers; nothing owns the process.
//
// # Packages
//
//	lb        the hub: Server, Snapshot, Balancer, HealthChecker, Backend,
//	          Frontend, Affinity, HeaderFunc; Pool (the standard Backend),
//	          TCPFrontend (L4 frontend), ReverseProxy (L7), Mux, Switch, Serve
//	lb/proxyproto PROXY protocol v1/v2 header writers and a Listener that
//	          reads them
//	lb/lbtest conformance suite and helpers for custom Balancers
//	balancer  round robin (smooth weighted), least connections, first,
//	          random, power of two choices, consistent hashing, ByName
//	health    active and passive health checks
//	tlsmode   passthrough, offloading and bridging adapters; certificates
//	sticky    cookie and source-IP affinity
//	acl       allow/deny/redirect rules and routes
//	examples  runnable programs; examples/lbproxy is the command-line
//	          load balancer
//
// # Typical usage
//
//	pool := &lb.Pool{Name: "web", Balancer: &balancer.LeastConn{}}
//	pool.Update([]lb.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80", Weight: 2}})
//	proxy := &lb.ReverseProxy{Pool: pool}
//	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
//	ln, _ := net.Listen("tcp", ":8080")
//	lb.Serve(ctx, srv, ln, 30*time.Second, proxy)
//
// The packages depend on lb and never on each other's internals, so a custom
// algorithm, health check or adapter is a type implementing one small
// interface of lb.
package lbkit
