package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Limits of the engine. lb configures its fallback http.Transport with the
// same idle and buffer limits.
const (
	MaxIdlePerHost = 1024             // idle connections kept per server
	IdleTimeout    = 90 * time.Second // an idle connection older than this is closed
	BufferSize     = 16 << 10         // read and write buffer of each connection
	MaxBody        = 64 << 10         // largest request body the engine writes itself
	MaxHeaderBytes = 1 << 20          // response header bytes read, 1xx responses included
)

// Transport is an HTTP/1.1 http.RoundTripper that does each round trip on
// the calling goroutine. Requests it does not handle (see the package
// documentation) go to Fallback.
//
// The zero value is ready to use: it dials with a net.Dialer, verifies
// servers with crypto/tls's defaults, waits without limit for response
// headers, keeps connections alive (up to MaxIdlePerHost per server, for
// IdleTimeout), and passes on what it does not handle to an http.Transport
// configured from the same fields. Set the fields before the first request
// and do not change them afterwards; a Transport is then safe for
// concurrent use by multiple goroutines.
type Transport struct {
	// DialContext opens connections to servers ("tcp" and the request's
	// host:port). Its errors are returned as they are, unwrapped. Nil
	// means net.Dialer's DialContext.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSClientConfig is the TLS configuration for "https" requests. It is
	// copied for each server; the copy's ServerName defaults to the host
	// of the address and its NextProtos is http/1.1. Nil means
	// crypto/tls's defaults.
	//
	// Without a ClientSessionCache, each server's copy gets its own
	// tls.NewLRUClientSessionCache(64), so that new connections resume
	// an earlier TLS session (an abbreviated handshake: no certificate
	// chain sent and verified) when the server allows it. One cache per
	// server address, because servers that share a TLS name (ServerName)
	// rarely share their ticket keys. No cache is added when
	// VerifyPeerCertificate is set, since crypto/tls does not call it on
	// resumed connections (VerifyConnection is called on every
	// connection, resumed or not: use it to keep resumption), nor when
	// SessionTicketsDisabled is set. A ClientSessionCache of the
	// configuration is used as it is, shared by all servers.
	TLSClientConfig *tls.Config

	// ResponseHeaderTimeout bounds the wait for a response's headers after
	// the request was written. Zero means no limit. The wait may last up
	// to an eighth longer: the read deadline set for one request serves
	// the following requests on the connection as long as it falls
	// between ResponseHeaderTimeout and 9/8 of it from their start, which
	// saves moving the deadline (a runtime timer update) for each request.
	ResponseHeaderTimeout time.Duration

	// Fallback takes the requests the engine passes on. Nil means an
	// http.Transport with the fields above, created on first use.
	Fallback http.RoundTripper

	// DisableKeepAlives closes each connection after one response and asks
	// the server to do so (Connection: close), as http.Transport's option.
	DisableKeepAlives bool

	fallbackOnce sync.Once
	fallback     http.RoundTripper // Fallback, or the default one

	mu    sync.Mutex                            // serializes additions to hosts
	hosts atomic.Pointer[map[hostKey]*idlePool] // copied on write: lookups take no lock
}

// Clone returns a new Transport with t's configuration and no connections.
// The Fallback is shared, not copied.
func (t *Transport) Clone() *Transport {
	return &Transport{
		DialContext:           t.DialContext,
		TLSClientConfig:       t.TLSClientConfig,
		ResponseHeaderTimeout: t.ResponseHeaderTimeout,
		Fallback:              t.Fallback,
		DisableKeepAlives:     t.DisableKeepAlives,
	}
}

// fallbackTransport returns Fallback, or the default fallback built on
// first use.
func (t *Transport) fallbackTransport() http.RoundTripper {
	if t.Fallback != nil {
		return t.Fallback
	}
	t.fallbackOnce.Do(func() {
		t.fallback = &http.Transport{
			DialContext:           t.DialContext,
			TLSClientConfig:       t.TLSClientConfig,
			ResponseHeaderTimeout: t.ResponseHeaderTimeout,
			DisableKeepAlives:     t.DisableKeepAlives,
			MaxIdleConnsPerHost:   MaxIdlePerHost,
			IdleConnTimeout:       IdleTimeout,
			WriteBufferSize:       BufferSize,
			ReadBufferSize:        BufferSize,
			DisableCompression:    true,
		}
	})
	return t.fallback
}

// dial opens a connection with DialContext or a net.Dialer.
func (t *Transport) dial(ctx context.Context, addr string) (net.Conn, error) {
	if t.DialContext != nil {
		return t.DialContext(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// sessionCacheSize is the capacity of the TLS session cache of each
// server (see Transport.TLSClientConfig). Sessions are keyed by server
// name, so one server's cache usually holds one.
const sessionCacheSize = 64

// AddSessionCache gives c, a client configuration, a new
// tls.NewLRUClientSessionCache(64) when it has no ClientSessionCache and
// resuming sessions would not skip a check: not when VerifyPeerCertificate
// is set (crypto/tls does not call it on resumed connections), nor when
// SessionTicketsDisabled is set. c must not be in use yet.
func AddSessionCache(c *tls.Config) {
	if c != nil && c.ClientSessionCache == nil && c.VerifyPeerCertificate == nil && !c.SessionTicketsDisabled {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
}

// hostKey identifies the connections of one server.
type hostKey struct {
	tls  bool
	addr string
}

// idlePool is the idle stack of one server's connections.
type idlePool struct {
	t         *Transport
	key       hostKey
	tlsConfig *tls.Config // with ServerName and NextProtos set, for key.tls

	mu    sync.Mutex
	idle  []*serverConn // the most recently used last
	sweep *time.Timer
	armed bool // sweep is scheduled
}

// serverConn is one connection to a server with its buffers. It is used by one
// request at a time; idle ones sit on their host's stack.
type serverConn struct {
	host  *idlePool
	conn  net.Conn
	br    *bufio.Reader // reads through the serverConn, which applies limit
	bw    *bufio.Writer
	limit int64 // bytes that br may still take from conn

	idleAt   time.Time // when it was put on the idle stack
	reused   bool      // it has carried a request before
	deadline time.Time // the read deadline set on conn, zero for none
	abort    func()    // pc.abortIO, bound once for context.AfterFunc
	peek     peekState // for alive
	one      [1]byte   // scratch for the end-of-body check

	// A request without a body over TCP is written by the first read of
	// its response (headwrite.go): raw and tcp are the socket (nil when
	// the connection is not a *net.TCPConn), wrote tells that bw wrote to
	// it during this request, and head holds the request (over TLS, its
	// records) while it waits for that read.
	raw       syscall.RawConn
	tcp       *net.TCPConn // over TLS (host.key.tls), under a tlsSocket
	wrote     bool
	deferHead bool // bw's next write goes to head
	head      []byte
	hr        headRead
}

// timeoutError is the error of a server that sent no response headers
// within ResponseHeaderTimeout: a net.Error whose Timeout is true.
type timeoutError struct{}

func (timeoutError) Error() string   { return "h1: timeout awaiting response headers" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// RoundTrip sends req to the server at req.URL.Host and returns its
// response, or passes req to the fallback transport when the engine does
// not handle it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !handles(req) {
		return t.fallbackTransport().RoundTrip(req)
	}
	host, err := validate(req)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	h := t.host(hostKey{tls: req.URL.Scheme == "https", addr: req.URL.Host})
	replayable := canReplay(req)
	ctx := req.Context()
	now := time.Now()
	for fresh := false; ; fresh = true {
		pc, err := h.get(ctx, now, fresh, !replayable)
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		resp, early, err := t.exchange(pc, req, host, now, replayable && !fresh)
		if err == nil {
			closeRequestBody(req)
			return resp, nil
		}
		if early && pc.reused && !fresh && replayable && ctx.Err() == nil && stale(err) {
			continue // the server closed the idle connection: once more on a new one
		}
		closeRequestBody(req)
		return nil, err
	}
}

// handles reports whether the engine itself handles req: a request of
// known, small length that asks for no upgrade and no 100-continue.
func handles(req *http.Request) bool {
	u := req.URL
	if u == nil || req.Header == nil || u.Host == "" || u.User != nil || req.Method == "CONNECT" {
		return false
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	if len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		if req.ContentLength != 0 {
			return false
		}
	} else if req.ContentLength <= 0 || req.ContentLength > MaxBody {
		return false
	}
	h := req.Header
	if len(h["Upgrade"]) > 0 || len(h["Expect"]) > 0 {
		return false
	}
	if c := h["Connection"]; len(c) > 0 && httpguts.HeaderValuesContainsToken(c, "upgrade") {
		return false
	}
	return true
}

// validate validates req as http.Transport does before sending anything,
// and returns the Host header to send.
func validate(req *http.Request) (string, error) {
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return "", fmt.Errorf("h1: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "", fmt.Errorf("h1: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "", fmt.Errorf("h1: invalid header field value for %q", k)
			}
		}
	}
	u := req.URL
	uri := u.Opaque
	if uri == "" {
		uri = u.EscapedPath()
	}
	if hasCTL(uri) || hasCTL(u.RawQuery) {
		return "", errors.New("h1: can't write control character in Request.URL")
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	host, err := httpguts.PunycodeHostPort(host)
	if err != nil {
		return "", err
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as net/http: an invalid Host is not sent
	}
	return withoutZone(host), nil
}

// hasCTL reports whether s holds an ASCII control character.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}

// withoutZone removes the zone of a bracketed IPv6 address
// ("[fe80::1%eth0]:80" becomes "[fe80::1]:80"): RFC 6874 forbids sending it.
func withoutZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	end := strings.LastIndexByte(host, ']')
	if end < 0 {
		return host
	}
	if pct := strings.LastIndexByte(host[:end], '%'); pct >= 0 {
		return host[:pct] + host[end:]
	}
	return host
}

// canReplay reports whether req may be sent again after a reused
// connection failed: net/http's rule (an idempotent method or an
// Idempotency-Key), for requests without a body.
func canReplay(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

// Retryable reports whether req, whose round trip failed with err, may be
// sent again, to another server: a request the engine would replay (an
// idempotent method or an Idempotency-Key, without a body) that failed
// because the server closed or reset the connection before the end of the
// response headers. The client has seen nothing of a response yet, and the
// request is safe to repeat. Timeouts and malformed responses are not
// retryable.
func Retryable(req *http.Request, err error) bool {
	return err != nil && canReplay(req) && stale(err)
}

// stale reports whether err is what a connection closed by the server
// gives: end of stream, reset, broken pipe, or a 408 notice.
func stale(err error) bool {
	return err == errIdle408 || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// host returns the idle stack of the server key, creating it.
func (t *Transport) host(key hostKey) *idlePool {
	if m := t.hosts.Load(); m != nil {
		if h := (*m)[key]; h != nil {
			return h
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.hosts.Load()
	if old != nil {
		if h := (*old)[key]; h != nil {
			return h
		}
	}
	h := &idlePool{t: t, key: key}
	if key.tls {
		// As net/http: the configuration is copied, and the server name
		// defaults to the host of the address.
		if t.TLSClientConfig != nil {
			h.tlsConfig = t.TLSClientConfig.Clone()
		} else {
			h.tlsConfig = &tls.Config{}
		}
		if h.tlsConfig.ServerName == "" {
			name := key.addr
			if hn, _, err := net.SplitHostPort(key.addr); err == nil {
				name = hn
			}
			h.tlsConfig.ServerName = name
		}
		h.tlsConfig.NextProtos = []string{"http/1.1"}
		AddSessionCache(h.tlsConfig)
	}
	m := make(map[hostKey]*idlePool, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	m[key] = h
	t.hosts.Store(&m)
	return h
}

// CloseIdleConnections closes the idle connections of every server, the
// fallback transport's included. Connections in use are closed when their
// response ends.
func (t *Transport) CloseIdleConnections() {
	var hosts map[hostKey]*idlePool
	if m := t.hosts.Load(); m != nil {
		hosts = *m
	}
	for _, h := range hosts {
		h.mu.Lock()
		idle := h.idle
		h.idle = nil
		if h.armed {
			h.sweep.Stop()
			h.armed = false
		}
		h.mu.Unlock()
		for _, pc := range idle {
			pc.conn.Close()
		}
	}
	if ci, ok := t.fallbackTransport().(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// get returns a connection to the server: the most recently used idle one
// unless fresh, else a new one. With check, an idle connection is first
// checked to be still open. now is the time of the request.
func (h *idlePool) get(ctx context.Context, now time.Time, fresh, check bool) (*serverConn, error) {
	if !fresh {
		for {
			pc := h.pop(now)
			if pc == nil {
				break
			}
			if check && !pc.deadline.IsZero() && !now.Before(pc.deadline) {
				// The peek would fail on an expired deadline. One that
				// expires meanwhile fails it too, and the connection is
				// closed for a new one: rare, and safe.
				pc.conn.SetReadDeadline(time.Time{})
				pc.deadline = time.Time{}
			}
			if check && !pc.alive() {
				pc.conn.Close()
				continue
			}
			return pc, nil
		}
	}
	return h.dial(ctx)
}

// pop takes the most recently used idle connection, or returns nil. When
// that one has been idle too long, so have all others: they are closed.
func (h *idlePool) pop(now time.Time) *serverConn {
	h.mu.Lock()
	n := len(h.idle)
	if n == 0 {
		h.mu.Unlock()
		return nil
	}
	pc := h.idle[n-1]
	if now.Sub(pc.idleAt) < IdleTimeout {
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		return pc
	}
	old := h.idle
	h.idle = nil
	h.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
	return nil
}

// put returns pc to the idle stack, or closes it when the stack is full.
func (h *idlePool) put(pc *serverConn) {
	pc.idleAt = time.Now()
	pc.reused = true
	h.mu.Lock()
	if len(h.idle) >= MaxIdlePerHost {
		h.mu.Unlock()
		pc.conn.Close()
		return
	}
	h.idle = append(h.idle, pc)
	if !h.armed {
		h.armed = true
		if h.sweep == nil {
			h.sweep = time.AfterFunc(IdleTimeout, h.sweepIdle)
		} else {
			h.sweep.Reset(IdleTimeout)
		}
	}
	h.mu.Unlock()
}

// sweepIdle closes the connections idle for longer than the idle timeout
// (the bottom of the stack) and schedules itself for the next one to
// expire, so that connections to servers no longer used are closed too.
func (h *idlePool) sweepIdle() {
	now := time.Now()
	h.mu.Lock()
	i := 0
	for i < len(h.idle) && now.Sub(h.idle[i].idleAt) >= IdleTimeout {
		i++
	}
	old := slices.Clone(h.idle[:i])
	h.idle = slices.Delete(h.idle, 0, i)
	if len(h.idle) > 0 {
		h.sweep.Reset(IdleTimeout - now.Sub(h.idle[0].idleAt))
	} else {
		h.armed = false
	}
	h.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
}

// dial opens a new connection to the server, with the TLS handshake for
// "https". Dial errors are DialContext's, unwrapped.
func (h *idlePool) dial(ctx context.Context) (*serverConn, error) {
	c, err := h.t.dial(ctx, h.key.addr)
	if err != nil {
		return nil, err
	}
	pc := &serverConn{host: h, limit: math.MaxInt64}
	if tcp, ok := c.(*net.TCPConn); ok {
		if raw, err := tcp.SyscallConn(); err == nil {
			pc.raw, pc.tcp = raw, tcp // requests' heads written by reads (headwrite.go)
		}
	}
	if h.key.tls {
		under := c
		if pc.tcp != nil {
			under = &tlsSocket{TCPConn: pc.tcp, pc: pc}
		}
		tc := tls.Client(under, h.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	pc.conn = c
	pc.br = bufio.NewReaderSize(pc, BufferSize)
	if pc.tcp != nil && !h.key.tls {
		pc.bw = bufio.NewWriterSize(headWriter{pc}, BufferSize)
	} else {
		pc.bw = bufio.NewWriterSize(c, BufferSize)
	}
	pc.abort = pc.abortIO
	return pc, nil
}

// Read is the source of pc.br: it reads from the connection within limit,
// which bounds the response headers.
func (pc *serverConn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, fmt.Errorf("h1: response headers exceed %d bytes", MaxHeaderBytes)
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	var n int
	var err error
	if len(pc.head) > 0 && !pc.host.key.tls { // over TLS, tlsSocket's Read writes it
		n, err = pc.writeHeadThenRead(p)
	} else {
		n, err = pc.conn.Read(p)
	}
	pc.limit -= int64(n)
	return n, err
}

// aLongTimeAgo is a deadline in the past, which makes blocked reads and
// writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// abortIO interrupts the connection's reads and writes; it is the
// context.AfterFunc of a canceled request.
func (pc *serverConn) abortIO() { pc.conn.SetDeadline(aLongTimeAgo) }

// release ends a response that was read to its end: the connection goes
// back to the idle stack if keep allows, the server sent nothing more, and
// the request's context did not interrupt it.
func (pc *serverConn) release(stop stopper, keep bool) {
	if !stop.stop() {
		keep = false // abortIO ran or is running: the deadlines are spoiled
	}
	if keep && pc.br.Buffered() == 0 {
		pc.host.put(pc)
		return
	}
	pc.conn.Close()
}

// discard closes a connection whose exchange did not end cleanly.
func (pc *serverConn) discard(stop stopper) {
	stop.stop()
	pc.conn.Close()
}

// errIdle408 is the error of a reused connection on which the server's
// first bytes were a 408 response: its notice that it closed the idle
// connection, not an answer to the request.
var errIdle408 = errors.New("h1: server closed the idle connection with 408 Request Timeout")

// exchange writes req on pc and reads the response headers. early reports
// that the failure, if any, happened before any byte of the response was
// read (so the server did not answer). With idle408, a 408 response on a
// reused connection is the server's notice that it closed the connection
// while idle (net/http's Transport reads it so too), and becomes the early
// error errIdle408. On success, the response body owns pc.
func (t *Transport) exchange(pc *serverConn, req *http.Request, host string, now time.Time, idle408 bool) (resp *http.Response, early bool, err error) {
	ctx := req.Context()
	stop := watchCancel(ctx, pc.abort)
	asksClose := req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
	if err := pc.writeRequest(req, host, t.DisableKeepAlives && !asksClose); err != nil {
		pc.discard(stop)
		return nil, true, t.exchangeError(ctx, err, false)
	}

	if t.ResponseHeaderTimeout > 0 {
		if !pc.reused || req.ContentLength > 0 {
			// The dial, the handshake or the body may have taken time: the
			// wait for the headers starts now.
			now = time.Now()
		}
		if d := t.ResponseHeaderTimeout; pc.deadline.Before(now.Add(d)) {
			// The deadline left by an earlier request, if any, would end
			// the wait too soon: set one with the slack allowed, which
			// the next requests within d/8 keep.
			pc.deadline = now.Add(d + d/8)
			pc.conn.SetReadDeadline(pc.deadline)
			if err := ctx.Err(); err != nil {
				// Canceled before the deadline was set: abortIO's past
				// deadline may have been undone.
				pc.discard(stop)
				return nil, false, err
			}
		}
	}
	pc.limit = MaxHeaderBytes
	if _, err := pc.br.Peek(1); err != nil {
		pc.discard(stop)
		return nil, true, t.exchangeError(ctx, err, true)
	}
	for {
		resp, err = readResponse(pc.br, req)
		if err != nil {
			pc.discard(stop)
			return nil, false, t.exchangeError(ctx, err, true)
		}
		// 1xx responses other than 101 are informational (103 Early
		// Hints, 102 Processing): the final response follows. They go to
		// the request's httptrace.ClientTrace.Got1xxResponse, through which
		// httputil.ReverseProxy forwards them to the client, as with
		// net/http's Transport.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				pc.discard(stop)
				return nil, false, err
			}
			pc.limit = MaxHeaderBytes // the caller limits what it received
		}
	}
	pc.limit = math.MaxInt64
	if idle408 && pc.reused && resp.StatusCode == http.StatusRequestTimeout {
		pc.discard(stop)
		return nil, true, errIdle408
	}
	if !pc.deadline.IsZero() && !buffered(resp, pc.br) {
		// The body is read without a deadline. When it is all in the
		// buffer already (a small response), the connection is not read
		// again before the next request checks the deadline, so the
		// header deadline may stay (and serve that request).
		pc.conn.SetReadDeadline(time.Time{})
		pc.deadline = time.Time{}
		if err := ctx.Err(); err != nil {
			// Canceled while the deadline was cleared: abortIO's past
			// deadline may have been undone.
			pc.discard(stop)
			return nil, false, err
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		pc.discard(stop)
		return nil, false, errors.New("h1: server switched protocols without an upgrade request")
	}
	keep := !resp.Close && !asksClose && !t.DisableKeepAlives
	if resp.Body == http.NoBody {
		pc.release(stop, keep)
		return resp, false, nil
	}
	b, ok := resp.Body.(*body) // the engine's own framing (readSimpleResponse)
	if !ok {
		b = &body{rc: resp.Body}
		resp.Body = b
	}
	b.pc, b.stop, b.keep, b.ctx = pc, stop, keep, ctx
	return resp, false, nil
}

// buffered reports whether the body of resp is entirely in br.
func buffered(resp *http.Response, br *bufio.Reader) bool {
	if resp.Body == http.NoBody {
		return true
	}
	return resp.ContentLength >= 0 && !resp.Close && len(resp.TransferEncoding) == 0 &&
		int64(br.Buffered()) >= resp.ContentLength
}

// exchangeError maps an error of the exchange: the context's error when it
// ended, a timeout waiting for the headers, or err.
func (t *Transport) exchangeError(ctx context.Context, err error, reading bool) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var ne net.Error
	if reading && errors.As(err, &ne) && ne.Timeout() {
		return timeoutError{}
	}
	return err
}

// writeRequest writes req as http.Transport does (same request line and
// header lines, headers sorted, the Host given), with its body, and flushes
// once. addClose adds "Connection: close" after the headers.
func (pc *serverConn) writeRequest(req *http.Request, host string, addClose bool) error {
	bw := pc.bw
	pc.wrote = false
	method := req.Method
	if method == "" {
		method = "GET"
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	writeRequestURI(bw, req.URL)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")

	h := req.Header
	ua := "Go-http-client/1.1"
	if v, ok := h["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		writeHeaderLine(bw, "User-Agent", ua)
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		bw.WriteString("Connection: close\r\n")
	}
	if req.ContentLength > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	}

	var arr [32]string
	keys := arr[:0]
	for k := range h {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			writeHeaderLine(bw, k, v)
		}
	}
	if addClose {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")

	if req.ContentLength > 0 {
		if err := pc.writeBody(req.Body, req.ContentLength); err != nil {
			return err
		}
	}
	if pc.raw != nil && !pc.wrote && req.ContentLength <= 0 && (req.Body == nil || req.Body == http.NoBody) {
		pc.deferHead = true // the whole head is in bw: the first read writes it
	}
	err := bw.Flush()
	pc.deferHead = false
	return err
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

// writeRequestURI writes u.RequestURI() without building it.
func writeRequestURI(bw *bufio.Writer, u *url.URL) {
	if u.Opaque != "" {
		bw.WriteString(u.RequestURI())
		return
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
}

// writeBody copies exactly n bytes of body into pc.bw, reading straight
// into its buffer, and checks that body ends there, as http.Transport does.
func (pc *serverConn) writeBody(body io.Reader, n int64) error {
	bw := pc.bw
	var sent int64
	eof := false
	for sent < n && !eof {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()[:min(int64(bw.Available()), n-sent)]
		m, err := body.Read(buf)
		bw.Write(buf[:m])
		sent += int64(m)
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return fmt.Errorf("h1: read request body: %w", err)
		}
	}
	// Less or more than Content-Length is an error, as in net/http.
	for try := 0; sent == n && !eof && try < 3; try++ {
		m, err := body.Read(pc.one[:])
		sent += int64(m)
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return fmt.Errorf("h1: read request body: %w", err)
		}
	}
	if sent != n || !eof {
		return fmt.Errorf("h1: request body length differs from ContentLength=%d", n)
	}
	return nil
}

// body is the body of a response read by the engine. Read to its end, it
// returns the connection to the idle stack; closed before, it closes the
// connection (the rest is not drained). Close may be called more than
// once, and concurrently with Read.
type body struct {
	rc    io.ReadCloser // http.ReadResponse's body, or nil to read src
	src   framedBody    // the body of a simple response (response.go)
	pc    *serverConn
	stop  stopper // stops the context's abortIO
	keep  bool    // the connection may carry another request
	ctx   context.Context
	state atomic.Int32 // bodyReading, then bodyReleased or bodyClosed
}

const (
	bodyReading int32 = iota
	bodyReleased
	bodyClosed
)

func (b *body) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyReleased:
		return 0, io.EOF
	case bodyClosed:
		return 0, http.ErrBodyReadAfterClose
	}
	var n int
	var err error
	if b.rc != nil {
		n, err = b.rc.Read(p)
	} else {
		n, err = b.src.Read(p)
	}
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		if b.state.CompareAndSwap(bodyReading, bodyReleased) {
			b.pc.release(b.stop, b.keep)
		}
		return n, io.EOF
	}
	if b.state.CompareAndSwap(bodyReading, bodyClosed) {
		b.pc.discard(b.stop)
	}
	if cerr := b.ctx.Err(); cerr != nil {
		err = cerr
	}
	return n, err
}

func (b *body) Close() error {
	if b.state.CompareAndSwap(bodyReading, bodyClosed) {
		b.pc.discard(b.stop)
	}
	return nil
}

// Buffered reports whether a Read of the body returns without waiting for
// the server: bytes of it (or its end) are in the connection's buffer.
// Only the goroutine reading the body may call it.
func (b *body) Buffered() bool {
	return b.state.Load() == bodyReading && b.pc != nil && b.pc.br.Buffered() > 0
}
