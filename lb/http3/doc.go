// Package http3 is an HTTP/3 frontend for lbkit: it serves requests that
// arrive over QUIC with any http.Handler, typically the same
// [github.com/lbkit/lbkit/lb.ReverseProxy] (with its ACLs, routes,
// stickiness, PROXY headers to servers, counters and access log) that the
// HTTPS frontend on the TCP port of the same number serves, and with the
// same *tls.Config, so certificates from a tlsmode.Store (SNI, reloads,
// ACME) and shared session ticket keys work for both.
//
// It is built on github.com/quic-go/quic-go, which only this package of
// lbkit imports; none of its types appear in the API. [Server] mirrors
// http.Server: Serve on a UDP socket, Shutdown (GOAWAY to every connection,
// requests in flight finish, then the connections close) and Close. It
// fits lb.Shutdowner, so lb.ServeTLS drains it with the TCP frontend.
// [ForServer] derives a Server from the TCP frontend's *http.Server. The
// Server's ConnContext and ConnState hooks get a net.Conn view of each
// QUIC connection, so the ReverseProxy's hooks count QUIC connections as
// frontend connections and keep PROXY-header connections per client.
//
// [AltSvc] wraps the handler of the TCP frontend so that its HTTP/1.1 and
// HTTP/2 responses announce HTTP/3 (`Alt-Svc: h3=":443"; ma=86400`), which
// is how browsers find it.
//
// 0-RTT (TLS early data) is refused unless Server.Allow0RTT is set. With
// it, requests that arrived in early data, which an attacker can replay,
// carry "Early-Data: 1" to the handler and on to the servers (RFC 8470),
// and [Is0RTT] reports them, so that whoever must not act on a replay can
// answer 425 Too Early.
//
// # Limits and defaults
//
// Every field has a zero value that works: handshakes are bounded by
// [DefaultHandshakeTimeout], connections without a request close after
// [DefaultIdleTimeout] and connections whose peer is silent after
// [PeerTimeout], a client may have [DefaultMaxStreams] requests open per
// connection, and a request's header section may be
// [DefaultMaxHeaderBytes] long. ReadTimeout bounds the reading of request
// bodies when set.
//
// [Server].Limits applies an lb.Limits (the TCP frontend's, so that both
// count together) to QUIC connections. QUIC has no accept queue that a
// listener could stop taking from, so where a TCP listener pauses at
// MaxConns, the Server refuses a new connection beyond MaxConns or the
// client's ClientMaxConns from quic-go's hook for new connections, before
// any handshake work, with QUIC's CONNECTION_REFUSED; a browser then uses
// TCP. Once half of either limit is taken, new connections first prove
// their client's address with a Retry. ClientRate counts requests in the ReverseProxy, as over TCP. The
// ReverseProxy's ClientTimeout and MinBodyRate bound HTTP/3 requests as
// they do HTTP/1.x ones: a QUIC stream's deadlines bound each read and
// write as a connection's do (HTTP/2's end the stream and are not used).
//
// # Usage
//
//	proxy := &lb.ReverseProxy{Pool: pool}
//	srv := &http.Server{
//		Handler:           http3.AltSvc(443, 0, proxy),
//		TLSConfig:         tlsmode.Config{Certificates: store}.HTTPConfig(),
//		ReadHeaderTimeout: 10 * time.Second,
//		ConnState:         proxy.ConnState,
//	}
//	h3 := http3.ForServer(srv)
//	h3.Handler = proxy // no Alt-Svc over HTTP/3
//	pc, err := net.ListenPacket("udp", ":443")
//	if err != nil {
//		return err
//	}
//	defer pc.Close()
//	go h3.Serve(pc)
//	ln, err := net.Listen("tcp", ":443")
//	if err != nil {
//		return err
//	}
//	return lb.ServeTLS(ctx, srv, ln, 30*time.Second, proxy, h3)
//
// examples/lbproxy does this with -http3 in its https modes.
package http3
