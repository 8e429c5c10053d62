package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/internal/h1"
)

// DefaultServerTimeout bounds the wait for a server's response headers.
const DefaultServerTimeout = 5 * time.Minute

// ReverseProxy is the L7 path: an http.Handler that forwards each request to
// a server chosen by a Pool. It forwards as httputil.ReverseProxy does with
// Rewrite, on a path of its own that builds the outgoing request once
// (without cloning the request and its header), and through
// httputil.ReverseProxy itself for upgrades and with a positive
// FlushInterval: hop-by-hop headers are removed (those the Connection
// field names too), a query with ";" separators or invalid escapes is
// re-encoded, 1xx responses and trailers are forwarded, and
// X-Forwarded-For, -Host, -Proto and -Port are rebuilt from the
// connection, never trusted from the client.
// The client's Host header is kept. Header fields whose name holds an
// underscore and, with "_" read as "-", names a framing, hop-by-hop or
// forwarding field (see DropUnderscoreHeaders) are dropped, as servers
// behind CGI-style gateways would take them for the real ones. WebSocket
// and other upgrades become tunnels that Shutdown waits for and Close ends;
// upgrades to cleartext HTTP/2 (Upgrade: h2c) are not forwarded, so the
// request reaches the server as plain HTTP/1.1: a tunnel of h2c would carry
// the client's further requests past Route and any per-request rules in
// front of the proxy. A WebSocket over HTTP/2 (RFC 8441 extended CONNECT,
// see ConfigureHTTP2) reaches the server as an HTTP/1.1 WebSocket upgrade
// and is a tunnel like the others.
//
// Requests are framed strictly. net/http's server already answers 400 for
// invalid request lines and header fields, several Content-Length fields
// that differ, and an invalid Content-Length, and 501 for a
// Transfer-Encoding other than one "chunked"; it ignores Transfer-Encoding
// in HTTP/1.0 requests and removes Content-Length when Transfer-Encoding
// is chunked. The proxy then checks MaxHeaderCount (431) and, from
// Content-Length, MaxBodyBytes (413). Before choosing a server, it reads
// the first part of a chunked HTTP/1.x body, up to 16 KiB, in one read
// that waits for the first bytes and returns what has arrived (so a client
// slow to send its body holds no server connection, as with nginx's
// request buffering; a client that waits for the response before sending
// its body waits for the http.Server's timeouts): invalid chunked framing
// found there is answered 400, and none of the request reaches a server. A body read to its end is sent with
// a Content-Length; otherwise what was read is sent first and the rest
// follows, chunked. Every body is re-framed: chunk extensions (which
// net/http discards without checking their syntax, so an unterminated
// quoted string in one is not seen) and the client's chunk sizes never
// reach a server. Reading the body makes net/http answer Expect:
// 100-continue, which is then not forwarded. When invalid framing, or a
// body over MaxBodyBytes, shows only later, the server connection is
// closed, and the client gets 400 (or 413) if no response has started, or
// sees its connection closed; the server is not blamed (Outcome.Failed is
// false, the server counts a client abort), and the access log says "PD"
// (see AccessRecord.Termination). The connection of every request refused
// so is closed after the answer. The size of the request header block is
// limited by the http.Server's MaxHeaderBytes (net/http answers 431).
//
// A failed connection to a server is retried on another one (the Pool's
// Retries; nothing was sent yet; RedispatchEvery may keep some retries on
// the same server), and so is a request safe to repeat (GET,
// HEAD, OPTIONS, TRACE or with an Idempotency-Key, without a body) whose
// server closed or reset the connection before the response headers
// ended; other requests that reached a server are not sent again. Errors become 503 when no server is
// available or the queue timed out, 504 when the server timed out, and 502
// otherwise, through ErrorHandler; without an ErrorHandler, a gRPC request
// (see IsGRPC) gets the gRPC status instead, in a Trailers-Only response
// (see WriteGRPCError): UNAVAILABLE, or DEADLINE_EXCEEDED on a server
// timeout.
//
// Each Pool gets one transport to its servers, shared by all requests to it
// and created on first use, dialing through the Pool (its Dial and
// ConnectTimeout). It is lbkit's own HTTP/1.1 engine, which does each round
// trip on the request's goroutine, without net/http Transport's goroutine
// hand-offs per request. It keeps up to 1024 idle connections per server
// for 90 s, and sends requests net/http would replay (GET, HEAD, OPTIONS,
// TRACE, or with an Idempotency-Key, without a body) again on a new
// connection when a reused one fails before the response. Requests with
// bodies over 64 KiB or of unknown length, upgrades (WebSockets) and
// Expect: 100-continue go to a tuned http.Transport (no compression, the
// same limits), as does everything when ServerHTTP2 is set. NewTransport
// replaces both.
//
// # Client timeouts
//
// A slow or stalled client holds a connection, a goroutine and, once its
// request is forwarded, a server connection. The proxy bounds HTTP/1.x
// clients itself, through deadlines on their connection (no timer or
// goroutine per read), and HTTP/3 clients (lb/http3) through the
// deadlines of their QUIC stream, which work alike: every wait for the request body and every write of
// the response must make progress within ClientTimeout (HAProxy's "timeout
// client", nginx's client_body_timeout and send_timeout), and the body
// must average MinBodyRate bytes per second of waiting once
// MinBodyRateGrace has been spent waiting for it (Kestrel's
// MinRequestBodyDataRate). A client that falls behind gets 408 (Request
// Timeout) with Connection: close when no response started, and its
// connection is closed; the request to the server is aborted and its
// connection not reused; the abort counts as the client's (ClientAborts,
// termination state "cD"), never against the server's health. Requests
// with a gRPC content type (application/grpc...) and upgraded streams
// (WebSockets) are meant to last: the first are bounded by their Pool's
// TunnelTimeout instead of ClientTimeout and have no minimum rate, the
// second have their connection's deadlines cleared and are closed after
// TunnelTimeout without a byte either way.
//
// The request headers are the http.Server's to bound, and Go's default is
// no bound at all. Serve a ReverseProxy with at least:
//
//	srv := &http.Server{
//		Handler:           proxy,
//		ReadHeaderTimeout: 10 * time.Second, // the whole request line and headers: HAProxy's "timeout http-request"
//		IdleTimeout:       time.Minute,      // between requests on a keep-alive connection: "timeout http-keep-alive"
//		MaxHeaderBytes:    64 << 10,         // request line and headers (Go's default is 1 MiB)
//	}
//
// Leave ReadTimeout and WriteTimeout unset: they are deadlines for a whole
// request and a whole response, which would cut a large upload or download
// however fast it goes, and they would override the proxy's deadlines.
// HTTP/2 streams have no per-read deadlines the proxy could use (a stream's
// deadline ends it even when nothing waits), so the ClientTimeout and
// MinBodyRate do not apply to them: bound HTTP/2 clients with the
// http.Server's HTTP2 settings (SendPingTimeout, PingTimeout and
// WriteByteTimeout, the last one to ClientTimeout) and flow control.
//
// Configure the exported fields before the first request.
type ReverseProxy struct {
	// Name names the proxy as a frontend in its statistics (Stats).
	Name string

	// Pool is where requests go, unless Route says otherwise.
	Pool *Pool

	// Route, when set, chooses the Pool of each request (by Host or path);
	// a nil result means Pool.
	Route func(r *http.Request) *Pool

	// Scheme is the scheme spoken to servers: "http" (the default) or
	// "https". With "https", TLSClientConfig configures the client side.
	Scheme string

	// TLSClientConfig is the TLS configuration towards servers when Scheme
	// is "https". Nil means the defaults of crypto/tls (servers verified
	// against the system roots). The proxy never modifies it, so it may be
	// shared, with health checks for instance. New connections resume
	// earlier TLS sessions with servers through a session cache (one per
	// server for HTTP/1.1, one for the requests that go through net/http's
	// Transport, HTTP/2 included), unless the configuration has its own
	// ClientSessionCache (used as it is), sets SessionTicketsDisabled, or
	// sets VerifyPeerCertificate, which crypto/tls skips on resumed
	// connections (VerifyConnection runs on all of them).
	TLSClientConfig *tls.Config

	// ServerHost, when set, is the Host header of the requests sent to
	// servers, in place of the client's (the configuration model's host;
	// HAProxy's "http-request set-header Host"), for servers that answer
	// one virtual host only, such as an object store's website endpoint.
	// X-Forwarded-Host still carries the client's. With Scheme "https"
	// it is also the TLS server name sent (SNI) and verified, without its
	// port, unless TLSClientConfig (or the configuration a NewTransport
	// hook passes to ServerTransport) names one. It must be a valid Host
	// value, a name or address with an optional port: net/http fails
	// requests that carry an invalid one. Empty, the default, keeps the
	// client's Host, and each server's address as the TLS name.
	ServerHost string

	// ServerHTTP2 makes the proxy speak HTTP/2 to servers over TLS that
	// offer it (ALPN). False, the default, keeps HTTP/1.1 on parallel
	// keep-alive connections, as HAProxy does without "alpn h2": Go's
	// HTTP/2 client multiplexing many requests over few connections costs
	// more CPU per request than HTTP/1.1 between a proxy and its servers.
	ServerHTTP2 bool

	// ServerH2C makes the proxy speak cleartext HTTP/2 with prior
	// knowledge (h2c) to servers that speak nothing else, such as gRPC
	// servers without TLS, with Scheme "http"; every request goes through
	// net/http's Transport (many streams over few connections per
	// server), dialed through the Pool as always. False, the default,
	// speaks HTTP/1.1. It is ignored with Scheme "https", where
	// ServerHTTP2 offers HTTP/2 through ALPN. It is a switch rather than a
	// Scheme "h2c" because Scheme is also the scheme of the URL servers
	// are sent, which for h2c is "http".
	ServerH2C bool

	// ServerTimeout bounds the wait for the server's response headers. Zero
	// means DefaultServerTimeout. On HTTP/1.1 connections the wait may last
	// up to an eighth longer: the read deadline set for one request serves
	// the next requests on the same connection while it falls within
	// ServerTimeout and 9/8 of it from their start, so that it is not
	// moved for every request.
	ServerTimeout time.Duration

	// ClientTimeout bounds each wait on an HTTP/1.x or HTTP/3 client while the
	// proxy reads its request body and while it writes the response: a
	// read or write that makes no progress for this long fails, and the
	// client is answered 408 or cut (see Client timeouts above). A slow
	// reader of a large response keeps its connection as long as it
	// takes data within ClientTimeout. Progress is what the kernel
	// reports, as for any event-driven proxy (HAProxy included): a write
	// blocked on a full send buffer resumes once about a third of that
	// buffer has drained, so a client must drain that much within
	// ClientTimeout (the buffer stays small on slow links; a host that
	// grows it to megabytes may want a longer timeout). A response that
	// fits in the socket buffers leaves the proxy at once; with the
	// proxy's ConnState hook on the http.Server, the kernel then aborts
	// the connection of a client that leaves it unread for ClientTimeout
	// (TCP_USER_TIMEOUT, on Linux). Zero means DefaultClientTimeout
	// (1 min); negative means none.
	ClientTimeout time.Duration

	// MinBodyRate is the lowest average rate, in bytes per second of
	// waiting for the client, at which an HTTP/1.x or HTTP/3 request body may arrive
	// once MinBodyRateGrace has been spent waiting for it. Time the proxy
	// spends not reading the body (a server slow to take it) does not
	// count. Zero means DefaultMinBodyRate (240 bytes/s, Kestrel's);
	// negative means none. gRPC request bodies have no minimum rate.
	MinBodyRate int

	// MinBodyRateGrace is the wait for a request body that MinBodyRate
	// does not count. Zero means DefaultMinBodyRateGrace (5 s); negative
	// means none.
	MinBodyRateGrace time.Duration

	// NewTransport, when set, builds the RoundTripper that talks to the
	// servers of a Pool; dial is the Pool's dialer to use for its
	// connections. Nil means lbkit's HTTP/1.1 engine with a tuned
	// http.Transport for what it does not handle (see ReverseProxy), which
	// ServerTransport builds, also for hooks that wrap it.
	NewTransport func(p *Pool, dial DialFunc) http.RoundTripper

	// Fallback serves requests when the Pool has no pickable server. Nil
	// means a 503 response. A [FailoverHost] forwards them to another
	// host, such as a static site (the configuration model's
	// failover_host).
	Fallback http.Handler

	// ErrorHandler answers requests that failed. Nil means a plain-text
	// response with the status of StatusForError, or for gRPC requests
	// (IsGRPC) a gRPC status (GRPCCodeForError) in a Trailers-Only
	// response with HTTP status 200.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// ModifyResponse, when set, may change the server's response.
	ModifyResponse func(*http.Response) error

	// FlushInterval is httputil.ReverseProxy's: zero means buffered
	// copies except for streamed responses, negative flushes every write.
	FlushInterval time.Duration

	// Logger receives proxy errors at Debug level; nil means slog.Default().
	Logger *slog.Logger

	// AccessLog, when set, receives one AccessRecord per request, after
	// the response ended. Nil, the default, builds no record.
	AccessLog AccessLogger

	// RequestID gives every request an ID, sent to the servers in
	// RequestIDHeader and written in its AccessRecord: 32 random hex
	// digits, or the client's own when TrustRequestID is set.
	RequestID bool

	// RequestIDHeader names the request ID header; empty means
	// DefaultRequestIDHeader.
	RequestIDHeader string

	// TrustRequestID keeps the ID a client sent in RequestIDHeader (1 to
	// 128 visible ASCII characters, no quotes or backslashes) instead of
	// replacing it. Set it only when the clients are trusted, such as
	// another proxy in front of this one: otherwise a client chooses the
	// ID that the logs of its request carry. A missing or invalid ID is
	// replaced by a new one.
	TrustRequestID bool

	// Trace propagates W3C Trace Context: a valid traceparent header keeps
	// its trace-id and flags and gets a new parent-id for the proxy's hop,
	// with tracestate passed through; a missing or invalid one starts a
	// new trace (not sampled) and tracestate is dropped. The IDs sent are
	// written in the AccessRecord.
	Trace bool

	// DropUnderscoreHeaders drops every request header field whose name
	// holds an underscore, as nginx does by default (underscores_in_headers
	// off). False, the default, drops only the names that some servers
	// (CGI, WSGI, PHP and others that map "-" and "_" to the same
	// variable) would read as a framing, hop-by-hop or forwarding field:
	// with "_" read as "-" and case ignored, Content-Length,
	// Transfer-Encoding, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
	// Proxy-Authorization, X-Forwarded-For, X-Forwarded-Host,
	// X-Forwarded-Proto, X-Forwarded-Port and X-Real-IP (Transfer_Encoding
	// or X_Forwarded_For, say). The other such fields (Connection, TE,
	// Trailer, Upgrade, Host, Forwarded) have no "-" and so no alias. Other
	// names with underscores, such as gRPC metadata, pass by default.
	DropUnderscoreHeaders bool

	// MaxHeaderCount bounds the number of header fields of a request, Host
	// and Transfer-Encoding included; a request with more is answered 431
	// Request Header Fields Too Large and reaches no server. Zero means
	// DefaultMaxHeaderCount (101, HAProxy's tune.http.maxhdr); negative
	// means no limit. The size of the header block is the http.Server's
	// MaxHeaderBytes (1 MiB by default), over which net/http answers 431
	// itself.
	MaxHeaderCount int

	// MaxBodyBytes bounds the size of a request body. A request whose
	// Content-Length is larger is answered 413 Content Too Large and
	// reaches no server; a chunked body that grows past it is answered 413
	// when it does so before forwarding or before the server's response,
	// and is cut otherwise, the server connection being closed. Zero, the
	// default, means no limit.
	MaxBodyBytes int64

	// Limits, when set, applies its per-client limits to every request
	// before it is forwarded: requests over a client's ClientRate, or on a
	// connection beyond its ClientMaxConns, are answered 429 Too Many
	// Requests (see Limits, and its Listener and ConnContext, which the
	// http.Server needs for ClientMaxConns). Nil, the default, limits
	// nothing.
	Limits *Limits

	proxies sync.Map // *Pool → *httputil.ReverseProxy
	streams streamTracker
	bufs    bufferPool

	clients          sync.Map // net.Conn → *clientConn (ConnContext)
	clientTransports atomic.Int64

	_     cacheLinePad
	stats frontendStats
}

// ServeHTTP forwards r to a server of its Pool.
func (p *ReverseProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w, r = p.guardClient(w, r)
	defer releaseGuard(w)
	p.stats.requests.Add(1)
	if p.traced() {
		p.serveTraced(w, r)
		return
	}
	p.serve(w, r)
}

func (p *ReverseProxy) serve(w http.ResponseWriter, r *http.Request) {
	// Per-client limits (limits.go) first, then the request's own
	// limits and framing (request.go): refused requests go no further.
	if p.Limits != nil && !p.limitRequest(w, r) {
		return
	}
	if !p.admit(w, r) {
		return
	}
	pool := p.poolOf(r)
	if pool == nil || len(pool.Snapshot().Servers) == 0 {
		if p.traced() {
			if st := accessFrom(r.Context()); st != nil && pool != nil {
				st.rec.Backend = pool.Name
			}
		}
		p.noServer(w, r, ErrNoServer)
		return
	}
	if isExtendedConnect(r) { // WebSocket over HTTP/2 (h2ws.go)
		p.serveExtendedConnect(w, r, pool)
		return
	}
	rp := p.proxyFor(pool)
	if p.forwardable(r) {
		p.forward(w, r, rp.Transport)
		return
	}
	rp.ServeHTTP(w, r)
}

func (p *ReverseProxy) noServer(w http.ResponseWriter, r *http.Request, err error) {
	if p.traced() {
		if st := accessFrom(r.Context()); st != nil {
			st.noServer = true
		}
	}
	if p.Fallback != nil {
		p.Fallback.ServeHTTP(w, r)
		return
	}
	p.fail(w, r, err)
}

func (p *ReverseProxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	if g := guardOf(w); g.timedOut() {
		p.clientTimedOut(w, r, g, err)
		return
	}
	if p.traced() {
		if st := accessFrom(r.Context()); st != nil {
			st.err = err
			st.noServer = false
		}
	}
	if r.Context().Err() != nil || errors.Is(err, ErrClientAborted) {
		p.stats.aborts.Add(1)
	} else {
		p.stats.errors.Add(1)
		p.stats.responses.count(StatusForError(err))
	}
	if clientFault(err) && r.ProtoMajor == 1 {
		// The rest of the request cannot be trusted to end where net/http
		// would look for the next one: the connection ends with the answer.
		// (HTTP/2 and HTTP/3 have no Connection field: a stream ends
		// alone, and HTTP/3 clients reject a response that has one.)
		w.Header().Set("Connection", "close")
	}
	if p.ErrorHandler != nil {
		p.ErrorHandler(w, r, err)
		return
	}
	if r.Context().Err() == nil {
		p.logger().LogAttrs(r.Context(), slog.LevelDebug, "proxy error",
			slog.String("client", r.RemoteAddr), slog.String("host", r.Host),
			slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if IsGRPC(r) {
		failGRPC(w, r, err)
		return
	}
	code := StatusForError(err)
	http.Error(w, http.StatusText(code), code)
}

// StatusForError maps a proxying error to the status a client gets: 408
// when the client was too slow (ErrClientTimeout), 400 for
// invalid framing (ErrBadFraming) or a body the client broke off
// (ErrClientAborted), 413 for ErrBodyTooLarge, 431 for ErrTooManyHeaders,
// 503 when no server is available or the queue timed out, 504 on a server
// timeout, 502 otherwise.
func StatusForError(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, ErrClientTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrTooManyHeaders):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, ErrBadFraming), errors.Is(err, ErrClientAborted):
		return http.StatusBadRequest
	case errors.Is(err, ErrNoServer), errors.Is(err, ErrQueueTimeout):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// rewrite turns in, the client's request, into out, the one sent to a
// server, whose header has lost the hop-by-hop and X-Forwarded fields
// already: scheme, ServerHost, the dropped underscore and h2c upgrade
// fields, the rebuilt forwarding fields (their values in fwd), the
// request ID and trace context. The server's address is set per attempt
// by poolTransport.
func (p *ReverseProxy) rewrite(in, out *http.Request, fwd *[4]string) {
	out.URL.Scheme = p.Scheme
	if out.URL.Scheme == "" {
		out.URL.Scheme = "http"
	}
	out.URL.Host = ""
	if p.ServerHost != "" {
		out.Host = p.ServerHost
	}
	dropUnderscoreHeaders(out.Header, p.DropUnderscoreHeaders)
	dropH2CUpgrade(out.Header)
	setForwarded(in, out, fwd)
	if p.RequestID || p.Trace {
		p.setTraceHeaders(in, out)
	}
}

func (p *ReverseProxy) proxyFor(pool *Pool) *httputil.ReverseProxy {
	if v, ok := p.proxies.Load(pool); ok {
		return v.(*httputil.ReverseProxy)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { p.rewrite(pr.In, pr.Out, new([4]string)) },
		Transport:      &poolTransport{pool: pool, base: p.transport(pool), streams: &p.streams, proxy: p},
		FlushInterval:  p.FlushInterval,
		BufferPool:     &p.bufs,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       discardLog,
	}
	v, _ := p.proxies.LoadOrStore(pool, rp)
	return v.(*httputil.ReverseProxy)
}

// ForgetPool drops what the proxy keeps for pool, which its Route no
// longer returns: the reverse proxy and transport built for it, whose idle
// server connections are closed. Requests in flight on it are not
// affected; a later request for pool builds them anew. Hosts that replace
// pools while the proxy serves (a reloaded configuration) call it for the
// retired ones, so that the proxy does not keep them.
func (p *ReverseProxy) ForgetPool(pool *Pool) {
	if v, ok := p.proxies.LoadAndDelete(pool); ok {
		closeIdleOf(v.(*httputil.ReverseProxy))
	}
}

// CloseIdleConnections closes the idle connections to the servers of
// every pool the proxy has served, as a host does once the proxy's server
// is shut down: otherwise they stay open until the transports' idle
// timeout. Connections in use are not affected. It is safe to call
// concurrently with requests.
func (p *ReverseProxy) CloseIdleConnections() {
	p.proxies.Range(func(_, v any) bool {
		closeIdleOf(v.(*httputil.ReverseProxy))
		return true
	})
}

// closeIdleOf closes the idle server connections of rp's transport.
func closeIdleOf(rp *httputil.ReverseProxy) {
	if pt, ok := rp.Transport.(*poolTransport); ok {
		if c, ok := pt.base.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// modifyResponse runs ModifyResponse and counts the response the client
// gets; when ModifyResponse fails, the error response is counted by fail.
func (p *ReverseProxy) modifyResponse(resp *http.Response) error {
	if p.ModifyResponse != nil {
		if err := p.ModifyResponse(resp); err != nil {
			if p.traced() {
				if st := accessFrom(resp.Request.Context()); st != nil {
					st.proxyError = true
				}
			}
			if b, ok := resp.Body.(*leasedBody); ok {
				b.ended.Store(true) // closed unread by the proxy, not the client
			}
			return err
		}
	}
	p.stats.responses.count(resp.StatusCode)
	return nil
}

// underscoreAliases are the header names, in lower case, that a name with
// underscores must not alias when "_" is read as "-": the framing and
// hop-by-hop fields, and the forwarding fields the proxy rebuilds or that
// servers trust from it. Only names with a "-" can have such an alias.
var underscoreAliases = [...]string{
	"content-length",
	"transfer-encoding",
	"keep-alive",
	"proxy-connection",
	"proxy-authenticate",
	"proxy-authorization",
	"x-forwarded-for",
	"x-forwarded-host",
	"x-forwarded-proto",
	"x-forwarded-port",
	"x-real-ip",
}

// dropUnderscoreHeaders deletes from h the fields whose name holds an
// underscore: all of them when all is set, else those that alias one of
// underscoreAliases. It does not allocate.
func dropUnderscoreHeaders(h http.Header, all bool) {
	for k := range h {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		if all || aliasesProtected(k) {
			delete(h, k)
		}
	}
}

// aliasesProtected reports whether name, with "_" read as "-" and case
// ignored, is one of underscoreAliases.
func aliasesProtected(name string) bool {
	for _, a := range underscoreAliases {
		if len(a) == len(name) && foldUnderscore(name, a) {
			return true
		}
	}
	return false
}

// foldUnderscore compares name with lower, a lower-case name of the same
// length, reading "_" in name as "-" and ignoring ASCII case.
func foldUnderscore(name, lower string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// dropH2CUpgrade removes the request for an upgrade when it offers h2c,
// cleartext HTTP/2, among its protocols. httputil has already removed
// HTTP2-Settings, which the client's Connection field names, and left
// Upgrade and "Connection: Upgrade" only.
func dropH2CUpgrade(h http.Header) {
	up := h["Upgrade"]
	if len(up) == 0 {
		return
	}
	for _, v := range up {
		for v != "" {
			var proto string
			proto, v, _ = strings.Cut(v, ",")
			proto = strings.TrimSpace(proto)
			if name, _, _ := strings.Cut(proto, "/"); strings.EqualFold(name, "h2c") {
				delete(h, "Upgrade")
				delete(h, "Connection")
				delete(h, "Http2-Settings")
				return
			}
		}
	}
}

// setForwarded rebuilds the X-Forwarded-* headers of out from in; the
// client's X-Forwarded-For, -Host and -Proto are gone from out already,
// and X-Forwarded-Port is replaced here. The four values are kept in
// vals: no allocation of their own.
func setForwarded(in, out *http.Request, vals *[4]string) {
	h := out.Header
	if ip := clientIP(in.RemoteAddr); ip != "" {
		vals[0] = ip
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	vals[1] = "http"
	if in.TLS != nil {
		vals[1] = "https"
	}
	h["X-Forwarded-Proto"] = vals[1:2:2]
	vals[2] = in.Host
	h["X-Forwarded-Host"] = vals[2:3:3]
	delete(h, "X-Forwarded-Port")
	if la, ok := in.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap := AddrPortOf(la); ap.IsValid() {
			vals[3] = portString(ap.Port())
			h["X-Forwarded-Port"] = vals[3:4:4]
		}
	}
}

// clientIP returns the IP address of an http.Request.RemoteAddr
// ("1.2.3.4:5", "[::1]:5"), unmapped, or "" when RemoteAddr is not an IP
// address and port. IPv4 addresses, which netip parses only in canonical
// form, are returned as a substring of remote, without allocating.
func clientIP(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	if addr := ap.Addr(); !addr.Is4() {
		return addr.Unmap().String()
	}
	return remote[:strings.LastIndexByte(remote, ':')]
}

// portCache remembers the decimal form of the last port formatted: a
// frontend serves one or a few ports, so formatting rarely allocates.
var portCache atomic.Pointer[portText]

type portText struct {
	port uint16
	text string
}

func portString(port uint16) string {
	if c := portCache.Load(); c != nil && c.port == port {
		return c.text
	}
	c := &portText{port, strconv.Itoa(int(port))}
	portCache.Store(c)
	return c.text
}

func (p *ReverseProxy) transport(pool *Pool) http.RoundTripper {
	return p.newTransport(pool, pool.dialAddr)
}

// newTransport builds a RoundTripper to the servers of pool that dials
// with dial: NewTransport's, else ServerTransport's.
func (p *ReverseProxy) newTransport(pool *Pool, dial DialFunc) http.RoundTripper {
	if p.NewTransport != nil {
		return p.NewTransport(pool, dial)
	}
	return p.ServerTransport(dial, nil)
}

// ServerTransport returns a new RoundTripper of the kind the proxy uses
// towards servers when NewTransport is nil: the HTTP/1.1 engine, with a
// tuned http.Transport for the requests the engine passes on (see the type's
// documentation), or that http.Transport alone when ServerHTTP2 is set with
// Scheme "https" or ServerH2C with Scheme "http". It dials with dial (a Pool's, as NewTransport receives
// it), and encrypts with tlsConfig when the request's scheme is "https"
// (nil means TLSClientConfig, with ServerHost as its name). NewTransport hooks use it to keep the engine
// while arranging connections their own way, for instance one transport per
// TLS server name.
func (p *ReverseProxy) ServerTransport(dial DialFunc, tlsConfig *tls.Config) http.RoundTripper {
	return p.serverTransport(dial, tlsConfig, false)
}

// serverTransport is ServerTransport, with keep-alives disabled when
// oneShot.
func (p *ReverseProxy) serverTransport(dial DialFunc, tlsConfig *tls.Config, oneShot bool) http.RoundTripper {
	if tlsConfig == nil {
		tlsConfig = p.TLSClientConfig
		if p.ServerHost != "" && p.Scheme == "https" && (tlsConfig == nil || tlsConfig.ServerName == "") {
			tlsConfig = tlsConfig.Clone()
			if tlsConfig == nil {
				tlsConfig = &tls.Config{}
			}
			tlsConfig.ServerName = hostOnly(p.ServerHost)
		}
	}
	ht := p.httpTransport(dial, tlsConfig)
	ht.DisableKeepAlives = oneShot
	if ht.ForceAttemptHTTP2 || ht.Protocols != nil {
		return ht
	}
	return &h1.Transport{
		DialContext:           dial,
		TLSClientConfig:       tlsConfig,
		ResponseHeaderTimeout: ht.ResponseHeaderTimeout,
		Fallback:              ht,
		DisableKeepAlives:     oneShot,
	}
}

// hostOnly returns the host of a Host value: without its port, and
// without the brackets of an IPv6 address.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// httpTransport builds the tuned http.Transport to servers that dials with
// dial.
func (p *ReverseProxy) httpTransport(dial DialFunc, tlsConfig *tls.Config) *http.Transport {
	ht := &http.Transport{
		DialContext:           dial,
		MaxIdleConnsPerHost:   h1.MaxIdlePerHost,
		IdleConnTimeout:       h1.IdleTimeout,
		ResponseHeaderTimeout: p.serverTimeout(),
		DisableCompression:    true,
		WriteBufferSize:       h1.BufferSize,
		ReadBufferSize:        h1.BufferSize,
		TLSClientConfig:       tlsConfig.Clone(), // http.Transport sets its NextProtos
		ForceAttemptHTTP2:     p.Scheme == "https" && p.ServerHTTP2,
	}
	h1.AddSessionCache(ht.TLSClientConfig) // as the engine does, one cache for all servers

	if p.ServerH2C && p.Scheme != "https" {
		ht.Protocols = h2cProtocols() // h2.go
	}
	return ht
}

// dialAddr opens a connection to the server at addr for an HTTP transport,
// within the connect timeout. It never applies Pool.TLS: the transport
// encrypts itself when Scheme is "https", and would otherwise encrypt twice.
func (p *Pool) dialAddr(ctx context.Context, network, addr string) (net.Conn, error) {
	start := monoNow()
	c, err := p.dial(ctx, &Server{Name: addr, Addr: addr}, nil, true)
	if err == nil {
		d := time.Duration(monoNow() - start)
		if st := accessFrom(ctx); st != nil {
			st.tc.Store(int64(d))
		}
		if byAddr := p.byAddr.Load(); byAddr != nil {
			if s := (*byAddr)[addr]; s != nil {
				countConnect(s, d)
				return c, nil
			}
		}
		p.traffic.connectTime.Observe(d) // a server removed meanwhile: the backend's own
	}
	return c, err
}

// Shutdown waits for the upgraded streams (WebSockets) to end, or for ctx to
// be done, in which case it returns ctx's error. Use it next to
// http.Server.Shutdown, which does not track them; Serve does both.
func (p *ReverseProxy) Shutdown(ctx context.Context) error { return p.streams.wait(ctx) }

// Close ends every upgraded stream now.
func (p *ReverseProxy) Close() error {
	p.streams.closeAll()
	return nil
}

// ActiveStreams reports the upgraded streams in progress.
func (p *ReverseProxy) ActiveStreams() int { return p.streams.len() }

// serverTimeout is ServerTimeout with its default applied.
func (p *ReverseProxy) serverTimeout() time.Duration {
	if p.ServerTimeout > 0 {
		return p.ServerTimeout
	}
	return DefaultServerTimeout
}

func (p *ReverseProxy) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// poolTransport picks a server of its Pool for every round trip, retrying
// connection failures on other servers, and holds the Lease until the
// response body is closed.
type poolTransport struct {
	pool    *Pool
	base    http.RoundTripper
	streams *streamTracker
	proxy   *ReverseProxy
}

func (t *poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := PickInfo{Request: req}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		info.Client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	retries := t.pool.retries()
	var body *replayableBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayableBody{rc: req.Body}
		req.Body = body
	}
	base, oneShot := t.base, (*clientTransport)(nil)
	if t.pool.ProxyHeader != nil {
		// Server connections that carry a PROXY header are the client's own.
		ci := requestConnInfo(req)
		var ct *clientTransport
		if cc, ok := req.Context().Value(clientConnKey{}).(*clientConn); ok {
			ct = cc.transport(t.pool, ci)
		}
		if ct == nil {
			ct = t.proxy.newClientTransport(t.pool, ci, true)
			oneShot = ct
		}
		base = ct.rt
	}
	var st *accessState
	if t.proxy.traced() {
		st = accessFrom(req.Context())
	}
	var failed *Server
	var lease Lease
	for attempt := 0; ; attempt++ {
		if lease.Server == nil {
			var err error
			if lease, err = t.pool.Acquire(req.Context(), info); err != nil {
				oneShot.closeIfSet()
				return nil, err
			}
			countRedispatch(failed, lease.Server)
		}
		if st != nil {
			st.leased = true
			st.rec.Backend = t.pool.Name
			st.rec.Server = lease.Server.Name
			st.rec.StickyPinned = lease.Sticky
			st.rec.StickyMoved = lease.Moved
			st.rec.setCounts(t.pool.liveCounts(lease.Server))
			st.rec.Retries = attempt
			st.rec.Redispatch = failed != nil && failed != lease.Server
			st.rec.Tw = time.Duration(max(lease.start-st.start, 0))
			st.rec.Tc = 0
		}
		req.URL.Host = lease.Server.Addr
		resp, err := base.RoundTrip(req)
		if err == nil {
			since := lease.since()
			lease.Server.rt.traffic.responseTime.Observe(since)
			if st != nil {
				st.rec.Tc = time.Duration(st.tc.Swap(0))
				st.rec.Tr = max(since-st.rec.Tc, 0)
				st.srvStatus = resp.StatusCode
				st.rec.setCounts(t.pool.liveCounts(lease.Server))
			}
			if ra, ok := t.pool.Affinity.(ResponseAffinity); ok {
				ra.PinResponse(resp.Header, info, lease.Server, lease.Sticky)
			}
			t.wrapBody(req.Context(), resp, lease, oneShot, body, st)
			return resp, nil
		}
		if cerr := body.clientError(); cerr != nil {
			// The client's body failed, and the server connection was
			// closed for it: the round trip's error may instead be the
			// request's context, canceled by net/http as the client's
			// connection failed, or the broken server connection.
			err = cerr
		}
		var ce *ConnectError
		connect := errors.As(err, &ce)
		retry := (connect || h1.Retryable(req, err)) && attempt < retries && req.Context().Err() == nil && !body.started()
		if retry {
			countRetry(lease.Server)
		}
		o := Outcome{Err: err, Connect: connect, HTTP: true, Sent: body.sent()}
		if st != nil {
			st.rec.BytesIn = body.sent()
		}
		if retry && !t.pool.redispatch(attempt+1) {
			lease = lease.again(o) // the same server (RedispatchEvery)
		} else {
			lease.Done(o)
			if !retry {
				oneShot.closeIfSet()
				return nil, err
			}
			failed = lease.Server
			info.Avoid = append(info.Avoid, lease.Server)
			lease = Lease{}
		}
		// The transport may still hold the failed attempt's request; each
		// attempt gets a request of its own (sharing the replayable body).
		req = req.Clone(req.Context())
		info.Request = req
	}
}

// wrapBody makes closing the response body end the lease; an upgraded
// stream's body is also tracked for Shutdown.
// A oneShot transport's connection is closed with the body, unless the
// response is an upgrade, whose stream owns the connection.
func (t *poolTransport) wrapBody(ctx context.Context, resp *http.Response, lease Lease, oneShot *clientTransport, body *replayableBody, st *accessState) {
	o := Outcome{Status: resp.StatusCode, HTTP: true}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		s := &leasedStream{ReadWriteCloser: rwc, lease: lease, outcome: o, tracker: t.streams, fe: &t.proxy.stats}
		s.watch(lease.pool.tunnelTimeout())
		lease.pool.trackStream(lease.Server, s)
		t.streams.add(s)
		resp.Body = s
		return
	}
	resp.Body = &leasedBody{ReadCloser: resp.Body, lease: lease, outcome: o, oneShot: oneShot,
		req: body, fe: &t.proxy.stats, ctx: ctx, st: st}
}

// leasedBody ends its Lease on the first Close, counting the bytes of the
// request and response bodies.
type leasedBody struct {
	io.ReadCloser
	lease   Lease
	outcome Outcome
	oneShot *clientTransport
	req     *replayableBody // nil without a request body
	fe      *frontendStats
	ctx     context.Context // the request's
	st      *accessState    // nil without access log, request ID or trace
	n       atomic.Int64    // response bytes read
	ended   atomic.Bool     // a read returned EOF or the server's error, or the proxy dropped the body
	closed  atomic.Bool
}

func (b *leasedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
	}
	switch {
	case err == nil:
	case err == io.EOF:
		b.ended.Store(true)
	case b.ctx.Err() != nil, b.req.clientFailed():
		// The client left, or its request body failed and the server
		// connection was closed for it: Close counts the client's abort.
	case !b.ended.Swap(true): // the server broke off
		if b.st != nil {
			b.st.srvAbort = true
		}
		b.lease.Server.rt.traffic.srvAborts.Add(1)
		b.lease.Server.rt.traffic.respErrors.Add(1) // as HAProxy counts them
	}
	return n, err
}

// Buffered reports whether a Read returns without waiting for the
// server, when the body underneath can tell (lbkit's HTTP/1.1 engine).
func (b *leasedBody) Buffered() bool {
	bb, ok := b.ReadCloser.(interface{ Buffered() bool })
	return ok && bb.Buffered()
}

func (b *leasedBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.closed.Swap(true) {
		b.oneShot.closeIfSet()
		o := b.outcome
		o.Sent, o.Received = b.req.sent(), b.n.Load()
		b.fe.bytesIn.Add(o.Sent)
		b.fe.bytesOut.Add(o.Received)
		if !b.ended.Load() {
			// Closed before the end, not for the server: the copy to
			// the client failed.
			b.fe.aborts.Add(1)
			b.lease.Server.rt.traffic.cliAborts.Add(1)
			if b.st != nil {
				b.st.cliAbort = true
			}
		}
		if b.st != nil {
			b.st.rec.BytesIn = o.Sent
		}
		b.lease.Done(o)
	}
	return err
}

// leasedStream is the server side of an upgraded connection. Its bytes
// count as they move, as those of an L4 session. Both directions pass
// through it, so it also enforces the Pool's TunnelTimeout: a timer closes
// it once no byte moved either way for that long.
type leasedStream struct {
	io.ReadWriteCloser
	lease   Lease
	outcome Outcome
	tracker *streamTracker
	fe      *frontendStats
	untrack func() // Pool.ShutdownOnDown registration
	once    sync.Once

	idle   int64        // TunnelTimeout (ns); 0: none
	last   atomic.Int64 // monoNow of the last byte moved
	timer  *time.Timer  // nil without idle
	closed atomic.Bool
}

// watch starts the idle timer of s, unless idle is 0.
func (s *leasedStream) watch(idle time.Duration) {
	if idle <= 0 {
		return
	}
	s.idle = int64(idle)
	s.last.Store(monoNow())
	s.timer = time.AfterFunc(idle, s.checkIdle)
}

// checkIdle closes s when it has been idle for its tunnel timeout, and
// otherwise waits for the rest of it.
func (s *leasedStream) checkIdle() {
	if s.closed.Load() {
		return
	}
	quiet := monoNow() - s.last.Load()
	if quiet >= s.idle {
		s.Close()
		return
	}
	s.timer.Reset(time.Duration(s.idle - quiet))
}

// Read reads what the server sent, for the client.
func (s *leasedStream) Read(p []byte) (int, error) {
	n, err := s.ReadWriteCloser.Read(p)
	if n > 0 {
		s.moved()
		s.lease.Server.rt.traffic.bytesOut.Add(int64(n))
		s.fe.bytesOut.Add(int64(n))
	}
	return n, err
}

// Write writes what the client sent, to the server.
func (s *leasedStream) Write(p []byte) (int, error) {
	n, err := s.ReadWriteCloser.Write(p)
	if n > 0 {
		s.moved()
		s.lease.Server.rt.traffic.bytesIn.Add(int64(n))
		s.fe.bytesIn.Add(int64(n))
	}
	return n, err
}

func (s *leasedStream) moved() {
	if s.idle > 0 {
		s.last.Store(monoNow())
	}
}

func (s *leasedStream) Close() error {
	err := s.ReadWriteCloser.Close()
	s.once.Do(func() {
		s.closed.Store(true)
		if s.timer != nil {
			s.timer.Stop()
		}
		s.untrack()
		s.tracker.remove(s)
		s.lease.Done(s.outcome)
	})
	return err
}

// replayableBody is the body of every proxied request. It lets the body be
// offered again to another server after a connection failure, as long as
// nothing of it was read. The transport closes request bodies on error, so
// Close is a no-op: the body belongs to the incoming request, which
// httputil.ReverseProxy closes when the handler ends.
//
// Once the client's body has returned io.EOF, later reads return io.EOF
// without reaching it. http.Transport reads a body once more after
// Content-Length bytes, to check that it ends there, on its writing
// goroutine; meanwhile the server may have answered, and net/http's server
// closes the client's body when the handler starts its response. That
// extra read would then fail with http.ErrBodyReadAfterClose, and the
// Transport would close the server connection under the response body
// being copied to the client.
type replayableBody struct {
	rc   io.ReadCloser
	read atomic.Bool  // set by the transport's writing goroutine
	eof  atomic.Bool  // rc returned io.EOF
	bad  atomic.Bool  // rc failed for the client (clientFault); err is set
	err  error        // the client's error, written once before bad
	n    atomic.Int64 // bytes read
}

// Read reads the client's body. Its errors, other than io.EOF, are the
// client's (see bodyError): the transport returns them as the round trip's
// error, which then blames the client, not the server.
func (b *replayableBody) Read(p []byte) (int, error) {
	if b.eof.Load() {
		return 0, io.EOF
	}
	b.read.Store(true)
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
	}
	switch {
	case err == nil:
	case err == io.EOF:
		b.eof.Store(true)
	default:
		if err = bodyError(err); clientFault(err) && !b.bad.Load() {
			b.err = err
			b.bad.Store(true)
		}
	}
	return n, err
}

// clientFailed reports whether the client's body failed; false for a nil
// body.
func (b *replayableBody) clientFailed() bool { return b != nil && b.bad.Load() }

// clientError returns the error of the client's body, or nil.
func (b *replayableBody) clientError() error {
	if !b.clientFailed() {
		return nil
	}
	return b.err
}

// sent returns the bytes of the body read so far; 0 for a nil body.
func (b *replayableBody) sent() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

func (b *replayableBody) Close() error { return nil }

func (b *replayableBody) started() bool { return b != nil && b.read.Load() }

// streamTracker tracks upgraded streams for Shutdown and Close.
type streamTracker struct {
	mu      sync.Mutex
	streams map[io.Closer]struct{}
	empty   chan struct{} // closed when streams becomes empty, while waited on
}

func (t *streamTracker) add(c io.Closer) {
	t.mu.Lock()
	if t.streams == nil {
		t.streams = make(map[io.Closer]struct{})
	}
	t.streams[c] = struct{}{}
	t.mu.Unlock()
}

func (t *streamTracker) remove(c io.Closer) {
	t.mu.Lock()
	delete(t.streams, c)
	if len(t.streams) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
	t.mu.Unlock()
}

func (t *streamTracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.streams)
}

func (t *streamTracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if len(t.streams) == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	ch := t.empty
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *streamTracker) closeAll() {
	t.mu.Lock()
	all := make([]io.Closer, 0, len(t.streams))
	for c := range t.streams {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

// bufferPool is httputil.BufferPool over a bounded free list of 32 KiB
// buffers; unlike a sync.Pool of slices it does not allocate on Put.
type bufferPool struct {
	once sync.Once
	free chan []byte
}

func (b *bufferPool) init() { b.free = make(chan []byte, 256) }

func (b *bufferPool) Get() []byte {
	b.once.Do(b.init)
	select {
	case buf := <-b.free:
		return buf
	default:
		return make([]byte, 32<<10)
	}
}

func (b *bufferPool) Put(buf []byte) {
	b.once.Do(b.init)
	select {
	case b.free <- buf[:cap(buf)]:
	default:
	}
}
