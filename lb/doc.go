// Package lb is the hub of lbkit: the vocabulary every other package speaks
// and the engine that moves connections and requests to servers.
//
// # Vocabulary
//
//   - Server: one server's configuration (name, address, weight, backup,
//     MaxConns). Its runtime state (health, active count, counters) is owned
//     by its Pool, keyed by name, and survives reconfiguration.
//   - Snapshot: the immutable list of pickable servers a Balancer chooses
//     from, published through an atomic pointer.
//   - Balancer (with the optional Preparer and Observer): the algorithm. The
//     balancer package has the built-in ones; lb/lbtest checks custom ones.
//   - HealthChecker, Affinity and HeaderFunc: the hooks the health, sticky
//     and PROXY-protocol pieces plug into.
//   - Conn and ConnInfo: a client connection with what is known of it
//     (client address, SNI, ALPN, TLS state), with Peek that never consumes.
//   - Backend: serves an L4 connection, as http.Handler serves a request.
//   - Frontend: accepts connections (ConnServer for L4, *http.Server for L7).
//
// # Engine
//
//   - Pool: the standard Backend. Update, SetState (the host's word, e.g.
//     maintenance), SetHealth (a checker's, which never overrides
//     maintenance), Drain, Status, Run; ServeConn for L4, Acquire/Lease for
//     L7 and custom protocols, DialContext for client-side balancing; connect
//     timeout, retries with redispatch, per-server MaxConns with a queue,
//     backups and Fallback; TLS to servers after the PROXY header
//     (bridging); ShutdownOnDown to close a failed server's sessions.
//   - ConnServer: the L4 frontend, with net/http's Serve/Shutdown/Close.
//   - Mux (SNI routes) and Switch/HandlerSwitch (atomic reload of a chain).
//   - ReverseProxy: the L7 path over a Pool.
//   - ProxyV1, ProxyV2 and ProxyListener: PROXY protocol headers sent to
//     servers and accepted from trusted upstreams.
//   - Serve: run a Frontend until a context ends, then drain it.
//
// # Usage
//
//	pool := &lb.Pool{Name: "web"}
//	if err := pool.Update([]lb.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}); err != nil {
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
// For L4, serve the same Pool with a ConnServer:
//
//	return lb.Serve(ctx, &lb.ConnServer{Backend: pool}, ln, 30*time.Second)
//
// # PROXY protocol
//
// ProxyV1 and ProxyV2 are HeaderFuncs for Pool.ProxyHeader: the header is
// written first on every new server connection, before any TLS to the
// server, naming the client (HAProxy's send-proxy, send-proxy-v2,
// send-proxy-v2-ssl, send-proxy-v2-ssl-cn). ProxyV2Options adds the SSL
// TLV (from ConnInfo.TLS), the client certificate's CN, AUTHORITY (SNI),
// ALPN and application TLVs. Connections lbkit opens on its own behalf get
// LOCAL. At L7, set the ReverseProxy's ConnContext and ConnState hooks on
// the http.Server so that each client keeps its own server connections:
//
//	pool := &lb.Pool{Name: "web", ProxyHeader: lb.ProxyV2(lb.ProxyV2Options{SSL: true, CN: true})}
//	proxy := &lb.ReverseProxy{Pool: pool}
//	srv := &http.Server{Handler: proxy, ConnContext: proxy.ConnContext, ConnState: proxy.ConnState}
//
// Behind another load balancer, ProxyListener reads its headers, from
// trusted networks only, and makes the carried client address the
// connection's RemoteAddr, which everything downstream uses:
//
//	ln = &lb.ProxyListener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
//
// # Design notes
//
// Picks are lock-free and allocation-free: one atomic load of the snapshot,
// an optional Affinity lookup, one Pick, and one atomic add (a CAS loop when
// MaxConns is set). Writers serialise on one mutex and republish. A Balancer
// never sees an unhealthy, draining or removed server, so it needs no health
// logic of its own.
//
// Slow paths allocate where that keeps the fast path simple: a retry or a
// full server makes the Pool derive a filtered snapshot (prepared again for
// the Balancer), so Balancers need no exclusion logic either.
//
// lb depends on no other public package of the module; it uses the
// internal/pipe copy loop, a leaf package (on Linux, plain TCP sessions
// move to its epoll event loops; see that package's documentation). The other packages import lb, so
// a custom Balancer needs lb alone.
//
// The L7 path wraps httputil.ReverseProxy in Rewrite mode. The server side
// is reached through one http.RoundTripper per Pool that owns the pick,
// the retries and the lease, over lbkit's HTTP/1.1 engine (internal/h1),
// which does each round trip on the request's goroutine; what it does not
// take goes to a tuned http.Transport. NewTransport swaps in another engine
// without changing the API.
package lb
