// Package lb is the hub of lbkit: the vocabulary every other package speaks
// and the engine that moves connections and requests to servers.
//
// A [Server] is one upstream server's configuration; a [Pool] holds servers,
// picks one per connection or request with a [Balancer] and is the standard
// [Backend]. A [Frontend] accepts clients: a [TCPFrontend] at L4, an
// [*http.Server] serving a [ReverseProxy] at L7, or an [HTTPFrontend] that
// serves the same http.Server's handler with lbkit's own HTTP/1.1 engine
// (idle keep-alive clients parked without goroutine or buffers). [Serve]
// (or [ServeTLS]) runs a Frontend until its context ends, then drains it. [Mux] routes
// connections by SNI; [Switch] and [HandlerSwitch] replace a whole chain
// atomically.
//
// Other packages plug into the hooks: [Balancer] (with the optional
// [Preparer] and [Observer]) for algorithms, [HealthChecker] for health
// checks, [Affinity] for stickiness and [HeaderFunc] for a preamble such as
// a PROXY protocol header (package [github.com/lbkit/lbkit/lb/proxyproto]
// writes and reads those).
// A connection travels as a [*Conn], whose [ConnInfo] says what is known of
// the client (address, SNI, ALPN, TLS state) and whose Peek never consumes.
//
// [Limits] bound what a frontend takes on its accept path: its open
// connections (HAProxy's maxconn: accepting pauses), and each client's
// connections and request or connection rate (refused at L4, 429 at L7),
// set on a TCPFrontend or a ReverseProxy and its listener.
//
// A Pool's servers change through [Pool.Update], which keeps the state of
// the servers that stay; package [github.com/lbkit/lbkit/lb/dnsservers]
// calls it to keep a Pool in step with DNS (A/AAAA or SRV records).
//
// [Pool.Stats], [TCPFrontend.Stats] and [ReverseProxy.Stats] return the
// counters and latency histograms ([Histogram]) kept on the data path, as
// plain structs named after HAProxy's stats fields; health checkers report
// each check through [CheckRecorder], and access rules count refusals
// through [DeniedCounter].
//
// # Usage
//
//	pool := &lb.Pool{Name: "web"}
//	if err := pool.Update([]lb.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}); err != nil {
//		return err
//	}
//	proxy := &lb.ReverseProxy{Pool: pool} // ClientTimeout 1 min, MinBodyRate 240 bytes/s after 5 s
//	srv := &http.Server{
//		Handler:           proxy,
//		ReadHeaderTimeout: 10 * time.Second, // no ReadTimeout or WriteTimeout: see ReverseProxy
//		IdleTimeout:       time.Minute,
//		MaxHeaderBytes:    64 << 10,
//	}
//	ln, err := net.Listen("tcp", ":8080")
//	if err != nil {
//		return err
//	}
//	return lb.Serve(ctx, srv, ln, 30*time.Second, proxy)
//
// Before serving, [ConfigureHTTP2] makes the server's HTTP/2 conform to
// RFC 9113 where net/http does not (h2spec's cases all pass) and, with
// HTTP2Options.Cleartext, serves HTTP/2 with prior knowledge (h2c) beside
// HTTP/1.1; [ReverseProxy.ServerH2C] speaks h2c to servers.
//
// For L4, serve the same Pool with a TCPFrontend:
//
//	return lb.Serve(ctx, &lb.TCPFrontend{Backend: pool}, ln, 30*time.Second)
//
// # gRPC
//
// gRPC passes through a ReverseProxy served over HTTP/2: clients negotiate
// h2 with the [*http.Server] by ALPN (ServeTLS), and the proxy speaks h2 to
// TLS servers with Scheme "https" and ServerHTTP2 set:
//
//	proxy := &lb.ReverseProxy{Pool: pool, Scheme: "https", ServerHTTP2: true, TLSClientConfig: toServers}
//	srv := &http.Server{Handler: proxy, TLSConfig: frontendTLS, ReadHeaderTimeout: 10 * time.Second}
//
// Unary and streaming calls in both directions work as they do without the
// proxy: request bodies stream to the server as the client sends them, and
// responses are flushed message by message whatever FlushInterval says:
// every write of a response without a Content-Length (all gRPC responses)
// is flushed, as httputil.ReverseProxy does. Trailers (grpc-status,
// grpc-message, custom and -bin metadata), the client's deadline
// (grpc-timeout) and its cancellation (the stream's reset, which cancels
// the request to the server) reach the other side. ServerTimeout bounds
// the wait for the response headers, which grpc-go sends with the first
// response message: raise it above the longest wait of a stream for its
// first message, or the call ends with DEADLINE_EXCEEDED.
//
// The proxy's own failures reach gRPC clients as gRPC statuses (see
// [IsGRPC], [WriteGRPCError] and [GRPCCodeForError]): UNAVAILABLE when no
// server is available or the connection to it fails, DEADLINE_EXCEEDED when
// the server timed out, in an HTTP 200 Trailers-Only response as Envoy
// answers, and not as an HTML or plain-text 502, 503 or 504; the proxy's
// statistics count them under the HTTP status they stand for. Package
// [github.com/lbkit/lbkit/health/grpchealth] checks servers with the gRPC
// health-checking protocol.
//
// # Faults
//
// A server that breaks off a response (closes or resets the connection
// mid-body) is never presented as a complete shorter response: the client
// gets the server's Content-Length, or a chunked response without its last
// chunk, and then the client connection is closed, so an HTTP client reports an
// unexpected EOF. The abort counts in the server's ServerAborts and its
// AccessRecord's termination is "SD". A server that sends no response
// headers within [ReverseProxy.ServerTimeout] gets the client a 504; one
// that resets the connection before answering a 502, unless the request
// is safe to repeat and goes to another server ([Pool.Retries]).
//
// At L4 a server's FIN is passed on as a half-close (the client reads to
// EOF and may still send), a reset as a reset of the client connection
// (counted in ServerAborts, termination "SD"; a client's reset is a client
// abort, "CD"), and a session without traffic for [Pool.TunnelTimeout] is
// closed.
//
// # L4 sessions on the event loop
//
// On Linux, a [Pool] copies the bytes of an L4 session between two plain
// TCP connections on an event loop (epoll, one loop per GOMAXPROCS), as
// HAProxy does. For the connections of a [TCPFrontend], [Pool.ServeConn]
// returns as soon as the session is on the loop: no goroutine waits for an
// idle session, which then costs the proxy under 4 KB (the sockets' kernel
// buffers aside; BENCHMARKS.md). From then on the session owns the
// connection: when the copy ends it counts the bytes and aborts, reports
// the [Outcome], hands the [AccessRecord] to the frontend's AccessLog (on a
// goroutine of its own, so that a slow logger holds up no other session)
// and closes the connection. Callers of ServeConn (Backends that wrap a
// Pool) must leave the connection alone once it returned, and must not
// take the return for the end of the session. The TCPFrontend tracks the
// session until it ends, as when ServeConn waited: Shutdown waits for it,
// Close (or the end of the grace period of [Serve]) ends it, and ConnCur
// and [Pool.Drain] count it. With TLS on either side, on other systems, or
// for a Conn that no TCPFrontend accepted, ServeConn returns when the
// session has ended.
//
// A [TCPFrontend] retries temporary accept errors, such as running out of
// file descriptors (EMFILE), with a back-off from 5 ms doubling up to 1 s,
// logging each at Warn level, and returns to normal at the first accepted
// connection; [*http.Server] does the same on the L7 path.
//
// TCP keep-alive probes are off on the connections a Pool dials
// ([Pool.TCPKeepAlive], HAProxy's srvtcpka) and, through
// [ListenKeepAlive] or [KeepAliveListener], on those a listener accepts
// (clitcpka): the proxy's timeouts find dead peers, and Go's default
// (probes every 15 s) costs about four setsockopt(2) calls per socket.
// A net.Listener made without them keeps Go's default.
//
// # Configuration model names
//
// Some settings of the configuration model (named after HAProxy's
// keywords) map to these fields, all off by default:
//
//   - connection_rate_limit: [Limits].ConnRate (and ConnBurst), new
//     connections per second per frontend; beyond it accepting pauses,
//     never resets. Default: no limit.
//   - failover_host: a [FailoverHost] as [ReverseProxy].Fallback, which
//     forwards the requests that find no server up to that host, with its
//     name as Host. Default: none (503).
//   - redispatch_attempt_count: [Pool].RedispatchEvery, which retries go
//     to another server. Default (0): every retry.
//   - a rate shared by several load balancers: [Limits].ClientRater, a
//     [ClientRater] (package lb/redisrate counts in Redis) that decides
//     the per-client rate instead of the local buckets. Default: nil, the
//     local buckets of ClientRate.
//   - host: [ReverseProxy].ServerHost, the Host header (and with https
//     the TLS name) sent to the servers; at L4, Pool.TLS.ServerName.
//     Default: the client's Host, each server's address as TLS name.
//
// # Design notes
//
// Picks take no lock and allocate nothing: a Balancer reads an immutable
// [Snapshot] that never holds an unhealthy, draining or removed server, so
// it needs no health or exclusion logic of its own; writers serialize on one
// mutex and publish a new Snapshot. lb imports no other public package of
// the module, so a custom Balancer needs lb alone.
//
// Slow clients are bounded with deadlines on their connections, not timers
// or goroutines per read: at L7 by the http.Server's ReadHeaderTimeout for
// the headers and by [ReverseProxy.ClientTimeout] and
// [ReverseProxy.MinBodyRate] for the body and the response (a client too
// slow gets 408 and is disconnected); at L4, and for upgraded streams at
// L7, by [Pool.TunnelTimeout] (no byte either way).
//
// At L7, requests are framed strictly before a server is chosen: invalid
// framing and requests over the limits (MaxHeaderCount, MaxBodyBytes) are
// answered by the proxy and reach no server, and every body is re-framed
// (see [ReverseProxy]). One http.RoundTripper per Pool owns the pick, the
// retries and the lease, over lbkit's HTTP/1.1 engine, which does each
// round trip on the request's goroutine; what it does not take goes to a
// tuned http.Transport. Measurements are in BENCHMARKS.md.
package lb
