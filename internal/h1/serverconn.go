package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/internal/park"
	"golang.org/x/net/http/httpguts"
)

// Buffers of the server engine, taken from pools only while bytes move.
const (
	serverBufSize = 4 << 10
	// maxPostHandlerRead is what is read of a request body the handler
	// left unread, so that the connection can serve the next request
	// (net/http's maxPostHandlerReadBytes).
	maxPostHandlerRead = 256 << 10
	// pendSize bounds the response body held back, before the header is
	// written, to compute a Content-Length (net/http's
	// bufferBeforeChunkingSize).
	pendSize = 2 << 10
)

var (
	readBufs  = sync.Pool{New: func() any { return new([serverBufSize]byte) }} // arrays: a Put allocates nothing
	writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, serverBufSize) }}
	pendBufs  = sync.Pool{New: func() any { b := make([]byte, 0, pendSize); return &b }}
)

// srvConn is one client connection of a Server. One goroutine at a time
// serves it: its own while a request is read or served or during the hot
// window, the parker's ready goroutine after it was parked.
type srvConn struct {
	srv  *Server
	rwc  net.Conn        // as accepted: a *tls.Conn over TLS
	sock syscall.RawConn // the socket; nil when there is none
	// parkable: sock is the connection's own (no TLS above it), and
	// parking has not failed.
	parkable bool
	overTLS  bool // rwc is a *tls.Conn; set once, before the watcher sees c
	remote   string
	tls      *tls.ConnectionState
	// ctx is the connection's context: values only (BaseContext,
	// ConnContext), so that it costs no cancellation state while the
	// connection is idle; each request's context is cancelled on its own.
	ctx context.Context

	// state is the http.ConnState and the Unix time it was entered
	// (state | sec<<8), for Shutdown.
	state atomic.Uint64

	rbuf   []byte // nil while parked
	r0, r1 int    // unread bytes: rbuf[r0:r1]
	bw     *bufio.Writer
	ready  func(error) // c.wake, made once
	hot    hotState

	mu         sync.Mutex
	parked     bool
	ticket     park.Ticket
	peerClosed bool         // the client sent FIN or reset
	reqCancel  *srvResponse // of the request being served, once its body is read: cancelRequest
	bodyDone   bool         // the request's body was read to its end
	watchID    uint64       // in the close watcher; 0: none

	hijacked bool
	closed   bool
}

func (c *srvConn) setState(st http.ConnState, hook bool) {
	c.state.Store(uint64(st) | uint64(time.Now().Unix())<<8)
	if hook && c.srv.cfg().ConnState != nil {
		c.srv.cfg().ConnState(c.rwc, st)
	}
}

func (c *srvConn) getState() (http.ConnState, int64) {
	v := c.state.Load()
	return http.ConnState(v & 0xff), int64(v >> 8)
}

// Run serves c: the gopool.Task that Serve starts for each connection.
func (c *srvConn) Run() { c.serve() }

// serve serves the connection from its accept, on a worker of the pool.
func (c *srvConn) serve() {
	s := c.srv
	cfg := s.cfg()
	if tc, ok := c.rwc.(*tls.Conn); ok {
		if !c.handshake(tc) {
			c.close()
			return
		}
		st := tc.ConnectionState()
		c.tls = &st
		if proto := st.NegotiatedProtocol; proto != "" && proto != "http/1.1" && proto != "http/1.0" {
			if fn := cfg.TLSNextProto[proto]; fn != nil {
				c.handOff(func(ctx context.Context) { fn(cfg, tc, &alpnHandler{ctx: ctx, srv: s, tc: tc}) })
				return
			}
		}
	}
	protos := s.protocols()
	if c.tls == nil && protos.UnencryptedHTTP2() && cfg.TLSNextProto[nextProtoUnencryptedHTTP2] != nil {
		c.rbuf = getReadBuf()
		if c.maybeH2C() {
			return
		}
	} else if !c.parkable {
		c.rbuf = getReadBuf()
	}
	// Otherwise the first request is awaited without a buffer (readRequest).

	if !protos.HTTP1() {
		c.close()
		return
	}
	c.loop()
}

// handshake runs the TLS handshake within net/http's handshake timeout.
func (c *srvConn) handshake(tc *tls.Conn) bool {
	d := c.srv.handshakeTimeout()
	if d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	err := tc.HandshakeContext(c.ctx)
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && tlsRecordHeaderLooksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			re.Conn.Close()
		}
		c.srv.logger().LogAttrs(c.ctx, slog.LevelDebug, "h1: TLS handshake error",
			slog.String("remote", c.remote), slog.Any("error", err))
		return false
	}
	if d > 0 {
		tc.SetDeadline(time.Time{})
	}
	return true
}

func tlsRecordHeaderLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// handOff serves the connection with another protocol's server (HTTP/2),
// as net/http does: Active without hooks, then Closed with them; the
// context given to serve ends with the connection.
func (c *srvConn) handOff(serve func(ctx context.Context)) {
	c.setState(http.StateActive, false)
	c.rwc.SetReadDeadline(time.Time{})
	c.rwc.SetWriteDeadline(time.Time{})
	c.srv.unwatch(c)
	ctx, cancel := context.WithCancel(c.ctx)
	serve(ctx)
	cancel()
	c.close()
}

const (
	nextProtoUnencryptedHTTP2 = "unencrypted_http2"
	h2cPreface                = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// maybeH2C reads up to the length of the HTTP/2 client preface, no more
// (as net/http does, so that the HTTP/2 server reads the rest from the
// socket), and hands the connection to the HTTP/2 server when it is the
// preface. Otherwise the bytes read stay buffered for HTTP/1.x.
func (c *srvConn) maybeH2C() bool {
	cfg := c.srv.cfg()
	if d := c.srv.headerTimeout(); d > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(d))
	}
	for _, want := range []int{len("PRI * HTTP/2.0"), len(h2cPreface)} {
		for c.r1 < want {
			n, err := c.rwc.Read(c.rbuf[c.r1:want])
			c.r1 += n
			if c.r1 > 0 && string(c.rbuf[:c.r1]) != h2cPreface[:c.r1] {
				return false
			}
			if err != nil {
				return false // the read loop sees the error again
			}
		}
	}
	c.putBufs()
	fn := cfg.TLSNextProto[nextProtoUnencryptedHTTP2]
	c.handOff(func(ctx context.Context) {
		fn(cfg, tls.Client(unencryptedConn{conn: c.rwc}, nil), &alpnHandler{ctx: ctx, srv: c.srv})
	})
	return true
}

// unencryptedConn passes a plain connection to a TLSNextProto function in
// a *tls.Conn that is never started, as net/http does for prior knowledge.
type unencryptedConn struct {
	net.Conn // nil: its methods are never called
	conn     net.Conn
}

// UnencryptedNetConn returns the plain connection.
func (c unencryptedConn) UnencryptedNetConn() net.Conn { return c.conn }

// alpnHandler is the handler given to a TLSNextProto function: the
// Server's handler, with the connection's context (BaseContext, which
// lb.ConfigureHTTP2 uses) and TLS state.
type alpnHandler struct {
	ctx context.Context
	srv *Server
	tc  *tls.Conn
}

// BaseContext returns the connection's context.
func (h *alpnHandler) BaseContext() context.Context { return h.ctx }

func (h *alpnHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil && h.tc != nil {
		st := h.tc.ConnectionState()
		r.TLS = &st
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	serveStream(h.srv.handler(r), w, r) // stream.go
}

// loop serves requests until the connection ends, is hijacked, or is
// parked (then wake continues on another goroutine).
func (c *srvConn) loop() {
	for {
		if !c.serveOne() {
			c.close()
			return
		}
		c.setState(http.StateIdle, true)
		if c.r0 < c.r1 {
			continue // pipelined: served in order
		}
		c.putWriter()
		switch c.waitIdle() {
		case idleData:
			continue
		case idleParked:
			return
		default:
			c.close()
			return
		}
	}
}

type idleResult int

const (
	idleClose idleResult = iota
	idleData
	idleParked
)

// waitIdle waits for the next request of a keep-alive connection: on the
// goroutine for the hot window, then parked, without goroutine or buffer,
// until the socket is readable or IdleTimeout passes.
func (c *srvConn) waitIdle() idleResult {
	s := c.srv
	if s.shuttingDown() {
		return idleClose
	}
	now := time.Now()
	var deadline time.Time
	if d := s.idleTimeout(); d > 0 {
		deadline = now.Add(d)
	}
	c.r0, c.r1 = 0, 0
	hot := s.hotWindow()
	if !c.parkable || hot < 0 {
		c.rwc.SetReadDeadline(deadline)
		return c.idleRead()
	}
	if hot > 0 {
		hd := now.Add(hot)
		if !deadline.IsZero() && deadline.Before(hd) {
			hd = deadline
		}
		c.rwc.SetReadDeadline(hd)
		n, err := c.hotRead()
		c.r1 = n
		if n > 0 {
			return idleData
		}
		if !isTimeout(err) || !deadline.IsZero() && !time.Now().Before(deadline) {
			return idleClose
		}
	}
	// Park: the buffers go back to their pools.
	c.putBufs()
	c.mu.Lock()
	if s.shuttingDown() || c.closed {
		c.mu.Unlock()
		return idleClose
	}
	t, err := s.park().ParkRaw(c.sock, deadline, c.ready)
	if err != nil {
		c.mu.Unlock()
		c.parkable = false // blocking reads from now on
		c.rbuf = getReadBuf()
		c.rwc.SetReadDeadline(deadline)
		return c.idleRead()
	}
	c.parked, c.ticket = true, t
	c.mu.Unlock()
	return idleParked
}

// idleRead waits for the next request with a blocking read.
func (c *srvConn) idleRead() idleResult {
	n, err := c.rwc.Read(c.rbuf)
	c.r1 = n
	if n > 0 {
		return idleData
	}
	_ = err
	return idleClose
}

// wake is the parker's ready function: the connection became readable
// (err nil), or its idle timeout passed.
func (c *srvConn) wake(err error) {
	c.mu.Lock()
	c.parked = false
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return // Shutdown or Close closed it meanwhile
	}
	if err != nil || c.srv.shuttingDown() {
		c.close()
		return
	}
	c.r0, c.r1 = 0, 0
	c.loop()
}

func (c *srvConn) putBufs() {
	c.putReadBuf()
	c.putWriter()
}

// getReadBuf takes a read buffer from its pool.
func getReadBuf() []byte { return readBufs.Get().(*[serverBufSize]byte)[:] }

// putReadBuf returns the read buffer to its pool when it holds nothing.
func (c *srvConn) putReadBuf() {
	if c.rbuf != nil && c.r0 == c.r1 {
		b := c.rbuf
		c.rbuf = nil
		if cap(b) == serverBufSize {
			readBufs.Put((*[serverBufSize]byte)(b[:serverBufSize]))
		}
		c.r0, c.r1 = 0, 0
	}
}

// putWriter returns the write buffer, flushed, to its pool.
func (c *srvConn) putWriter() {
	if c.bw != nil {
		c.bw.Reset(nil)
		writeBufs.Put(c.bw)
		c.bw = nil
	}
}

// close ends the connection (unless hijacked): closed, removed from its
// Server, ConnState Closed.
func (c *srvConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	reqCancel := c.reqCancel
	c.mu.Unlock()
	c.srv.unwatch(c)
	if !c.hijacked {
		c.rwc.Close()
		c.setState(http.StateClosed, true)
	}
	if reqCancel != nil {
		reqCancel.cancelRequest()
	}
	c.srv.forget(c)
	if c.rbuf != nil {
		c.r0, c.r1 = 0, 0
	}
	c.putBufs()
}

// closeWriteAndWait half-closes the connection after an error response
// and waits a little for the client to read it, so that the unread
// request bytes do not make the kernel reset the connection before
// (net/http's closeWriteAndWait).
func (c *srvConn) closeWriteAndWait() {
	if c.bw != nil {
		c.bw.Flush()
	}
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if c.rbuf != nil {
		for {
			if _, err := c.rwc.Read(c.rbuf); err != nil {
				break
			}
		}
	}
	c.r0, c.r1 = 0, 0
}

// fill reads more bytes into rbuf after r1, growing it (up to limit, when
// positive) when it is full.
func (c *srvConn) fill(limit int) error {
	if c.r0 > 0 && c.r1 == len(c.rbuf) || c.r0 == c.r1 {
		copy(c.rbuf, c.rbuf[c.r0:c.r1])
		c.r1 -= c.r0
		c.r0 = 0
	}
	if c.r1 == len(c.rbuf) {
		if limit > 0 && len(c.rbuf) >= limit {
			return errHeaderTooLarge
		}
		n := 2 * len(c.rbuf)
		if limit > 0 {
			n = min(n, limit)
		}
		nb := make([]byte, n)
		copy(nb, c.rbuf[:c.r1])
		c.rbuf = nb
	}
	n, err := c.rwc.Read(c.rbuf[c.r1:])
	c.r1 += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// errorHeaders follow the status line of the server's own error responses.
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// serveOne reads one request and serves it; it reports whether the
// connection may serve another.
func (c *srvConn) serveOne() bool {
	s := c.srv
	req, w, err := c.readRequest()
	if err != nil {
		var se *statusError
		if errors.As(err, &se) {
			c.getWriter()
			text := http.StatusText(se.status)
			fmt.Fprintf(c.bw, "HTTP/1.1 %d %s%s%d %s", se.status, text, errorHeaders, se.status, text)
			if se.status == http.StatusBadRequest || se.status == http.StatusHTTPVersionNotSupported {
				fmt.Fprintf(c.bw, ": %s", se.reason)
			}
			c.closeWriteAndWait()
		}
		return false
	}
	if s.shuttingDown() {
		// net/http drops a request read while shutting down.
		return false
	}
	if w.expectFailed {
		c.getWriter()
		io.WriteString(c.bw, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		c.bw.Flush()
		return false
	}
	ok := c.runHandler(w, req)
	w.cancelRequest()
	c.mu.Lock()
	c.reqCancel = nil // the request's context is not kept while idle
	c.mu.Unlock()
	if !ok {
		return false
	}
	if c.hijacked {
		return false
	}
	return !w.closeAfter
}

// runHandler calls the handler, recovering a panic as net/http does, and
// finishes the response; false means the connection must close.
func (c *srvConn) runHandler(w *srvResponse, req *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			ok = false
			if err != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logf("http: panic serving %v: %v\n%s", c.remote, err, buf)
			}
		}
	}()
	c.srv.handler(req).ServeHTTP(w, req)
	if c.hijacked {
		return true
	}
	w.finish()
	return w.err == nil
}

func (c *srvConn) getWriter() {
	if c.bw == nil {
		c.bw = writeBufs.Get().(*bufio.Writer)
		c.bw.Reset(c.rwc)
	}
}

// readRequest reads and parses the next request head, and sets up its
// body, response and context.
func (c *srvConn) readRequest() (*http.Request, *srvResponse, error) {
	s := c.srv
	cfg := s.cfg()
	t0 := time.Now()
	var hdrDeadline, wholeDeadline time.Time
	if d := s.headerTimeout(); d > 0 {
		hdrDeadline = t0.Add(d)
	}
	if d := cfg.ReadTimeout; d > 0 {
		wholeDeadline = t0.Add(d)
	}
	c.rwc.SetReadDeadline(hdrDeadline)
	limit := s.maxHeaderBytes() + 4096
	var end, resume int
	active := false
	for {
		if c.r1 > c.r0 {
			if !active {
				active = true
				c.setState(http.StateActive, true)
			}
			end, resume = scanHeaderEnd(c.rbuf[c.r0:c.r1], resume)
			if end >= 0 {
				break
			}
			if c.r1-c.r0 >= limit {
				return nil, nil, errHeaderTooLarge
			}
		}
		if c.rbuf == nil {
			// Nothing buffered (a new connection): wait for bytes
			// without holding a buffer.
			n, err := c.hotRead()
			c.r0, c.r1 = 0, n
			if n == 0 {
				return nil, nil, err
			}
			continue
		}
		if err := c.fill(limit); err != nil {
			return nil, nil, err
		}
	}
	if end > limit {
		return nil, nil, errHeaderTooLarge
	}
	head := string(c.rbuf[c.r0 : c.r0+end])
	c.r0 += end
	// The request is parsed into a value that WithContext copies to the
	// heap below, its URL into the response: one allocation for both.
	w := &srvResponse{c: c, hdr: make(http.Header), contentLength: -1}
	var parsed http.Request
	req := &parsed
	fr, err := parseRequest(head, req, &w.url)
	if err != nil {
		return nil, nil, err
	}
	req.RemoteAddr, req.TLS = c.remote, c.tls
	rl := requestLine{method: req.Method, major: req.ProtoMajor, minor: req.ProtoMinor}
	h := req.Header

	if rl.method == "HEAD" {
		w.head = true
	}
	ctx, cancel := context.WithCancel(c.ctx)
	w.cancel = cancel
	w.rctx.Context = ctx
	if c.ctx.Done() == nil { // only cancelRequest cancels the request
		w.rctx.hook = &w.hook
	}
	w.hook.ctx = &w.rctx
	b := &w.body
	b.c, b.w = c, w
	if fr.chunked {
		b.chunked = true
		b.remain = 0
	} else {
		b.remain = fr.contentLength
	}
	switch {
	case fr.chunked || fr.contentLength > 0:
		req.Body = b
	default:
		req.Body = http.NoBody
		b.eof = true
	}
	if headerHasToken(h, "Expect", "100-continue") {
		if rl.minor >= 1 && fr.contentLength != 0 {
			w.expectContinue = true
			w.canContinue.Store(true)
		}
	} else if len(h["Expect"]) > 0 {
		w.expectFailed = true
	}
	c.mu.Lock()
	c.bodyDone = b.eof
	c.reqCancel = nil
	if b.eof {
		c.reqCancel = w
		if c.peerClosed {
			w.cancelRequest()
		}
	}
	c.mu.Unlock()

	c.rwc.SetReadDeadline(wholeDeadline)
	if d := cfg.WriteTimeout; d > 0 {
		c.rwc.SetWriteDeadline(time.Now().Add(d))
	}
	c.getWriter()
	w.req = req.WithContext(&w.rctx)
	return w.req, w, nil
}

// parseRequest parses a request head (through its empty line) into req,
// without body, context or connection fields, with u as its URL, and
// returns its framing.
func parseRequest(head string, req *http.Request, u *url.URL) (framing, error) {
	line, rest := nextLine(head)
	rl, err := parseRequestLine(line)
	if err != nil {
		return framing{}, err
	}
	var fbuf [32]field
	fields, err := parseFields(fbuf[:0], rest)
	if err != nil {
		return framing{}, err
	}
	h := buildHeader(fields)

	hosts, haveHost := h["Host"]
	if rl.minor >= 1 && (!haveHost || len(hosts) == 0) && rl.method != "CONNECT" {
		return framing{}, badRequest("missing required Host header")
	}
	if len(hosts) > 1 {
		return framing{}, badRequest("too many Host headers")
	}
	var host string
	if len(hosts) == 1 {
		host = hosts[0]
		if !validHost(host) {
			return framing{}, badRequest("malformed Host header")
		}
	}
	delete(h, "Host")

	rawurl := rl.target
	justAuthority := rl.method == "CONNECT" && rawurl[0] != '/'
	if justAuthority {
		rawurl = "http://" + rawurl
	}
	if !parseOriginForm(rawurl, u) {
		pu, err := url.ParseRequestURI(rawurl)
		if err != nil {
			return framing{}, badRequest("invalid request target")
		}
		*u = *pu
	}
	if justAuthority {
		u.Scheme = ""
	}
	fr, err := requestFraming(h, rl.major, rl.minor)
	if err != nil {
		return fr, err
	}

	*req = http.Request{
		Method:        rl.method,
		URL:           u,
		Proto:         protoString(rl.major, rl.minor),
		ProtoMajor:    rl.major,
		ProtoMinor:    rl.minor,
		Header:        h,
		ContentLength: fr.contentLength,
		Host:          host,
		RequestURI:    rl.target,
	}
	if u.Host != "" {
		req.Host = u.Host
	}
	if fr.chunked {
		req.TransferEncoding = []string{"chunked"}
		req.Trailer = fr.trailer
	}
	if rl.minor == 0 {
		req.Close = !headerHasToken(h, "Connection", "keep-alive")
	} else {
		req.Close = headerHasToken(h, "Connection", "close")
	}

	return fr, nil
}

// parseOriginForm parses the common request target, a path and query of
// bytes that url.ParseRequestURI keeps as they are, into u, as
// ParseRequestURI does, without allocating; it reports whether target had
// that form. Others (escapes, characters a path escapes, absolute and
// authority forms, "*") are ParseRequestURI's to parse.
func parseOriginForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" {
		u.ForceQuery = true
	}
	return true
}

// pathByte holds the bytes a path may have that url's parser neither
// unescapes nor escapes again: letters, digits and -._~$&+,/:;=@.
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// validHost is httpguts.ValidHostHeader without its allocation for the
// common case of letters, digits, dots, dashes and a port.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':') {
			return validHostSlow(h)
		}
	}
	return true
}

func validHostSlow(h string) bool { return httpguts.ValidHostHeader(h) }

func protoString(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "HTTP/1.1"
	case major == 1 && minor == 0:
		return "HTTP/1.0"
	}
	return fmt.Sprintf("HTTP/%d.%d", major, minor)
}

// bodyEnded records that the request's body was read to its end: from
// now on a close of the client cancels the request's context, as
// net/http's background read does.
func (c *srvConn) bodyEnded(w *srvResponse) {
	c.mu.Lock()
	c.bodyDone = true
	c.reqCancel = w
	if c.peerClosed {
		w.cancelRequest()
	}
	c.mu.Unlock()
}

// peerClose is the close watcher's notice that the client sent FIN or
// reset the connection. Bytes still unread (a pipelined request) keep the
// request going, as net/http's background read does.
func (c *srvConn) peerClose() {
	if !c.overTLS && c.sock != nil && pending(c.sock) {
		// Over TLS the unread bytes are most likely the client's
		// close_notify: the close stands.
		return
	}
	c.mu.Lock()
	c.peerClosed = true
	if c.bodyDone && c.reqCancel != nil {
		c.reqCancel.cancelRequest()
	}
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// srvBody is a request body: Content-Length bytes or chunks, read from the
// connection's buffer and then from the socket. Its methods are safe for
// concurrent use (a transport may read it while the handler writes the
// response, which may discard it).
type srvBody struct {
	mu       sync.Mutex
	c        *srvConn
	w        *srvResponse
	chunked  bool
	remain   int64 // of the Content-Length, or of the current chunk
	inChunk  bool  // a chunk's data is being read (chunked)
	checkEnd bool  // the CRLF after a chunk's data is next
	excess   int64 // chunked: non-data bytes beyond the allowance
	eof      bool
	closed   bool
	err      error // sticky
}

// Read reads the body; a read after Close returns
// http.ErrBodyReadAfterClose, one after the handler returned an error.
func (b *srvBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *srvBody) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.w.canContinue.Load() {
		b.w.writeContinue()
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readFixed(p)
	}
	if err == io.EOF {
		b.eof = true
		b.c.bodyEnded(b.w)
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// readFixed reads at most remain bytes: buffered ones first, then straight
// from the socket, never past the body.
func (b *srvBody) readFixed(p []byte) (int, error) {
	if b.remain == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	var n int
	var err error
	if c.r0 < c.r1 {
		n = copy(p, c.rbuf[c.r0:c.r1])
		c.r0 += n
	} else {
		n, err = c.rwc.Read(p)
	}
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readLine returns the next line of the connection's buffer, through LF,
// reading more when needed, at most maxChunkLine bytes.
func (b *srvBody) readLine() ([]byte, error) {
	c := b.c
	scanned := 0
	for {
		if i := bytes.IndexByte(c.rbuf[c.r0+scanned:c.r1], '\n'); i >= 0 {
			line := c.rbuf[c.r0 : c.r0+scanned+i+1]
			c.r0 += len(line)
			return line, nil
		}
		scanned = c.r1 - c.r0
		if scanned >= maxChunkLine {
			return nil, errChunkTooLong
		}
		if err := c.fill(0); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// crlfLine strips the CRLF of a line, or fails when it ends with a bare
// LF or holds another CR (as net/http's chunked reader does).
func crlfLine(line []byte) ([]byte, error) {
	if i := bytes.IndexByte(line, '\r'); i < 0 || i != len(line)-2 {
		return nil, errChunkLine
	}
	if len(line)-2 >= maxChunkLine {
		return nil, errChunkTooLong
	}
	return line[:len(line)-2], nil
}

func (b *srvBody) readChunked(p []byte) (n int, err error) {
	c := b.c
	// Like net/http's reader, one Read goes on through every chunk whose
	// bytes are already buffered, so that an error in them shows with the
	// data before it; it waits for the socket only when it has nothing.
	for {
		if b.checkEnd {
			if c.r1-c.r0 < 2 {
				if n > 0 {
					return n, nil
				}
				if err := c.fillAtLeast(2); err != nil {
					return 0, err
				}
			}
			if c.rbuf[c.r0] != '\r' || c.rbuf[c.r0+1] != '\n' {
				return n, errChunkLine
			}
			c.r0 += 2
			b.checkEnd = false
		}
		if !b.inChunk {
			if n > 0 && bytes.IndexByte(c.rbuf[c.r0:c.r1], '\n') < 0 {
				return n, nil
			}
			line, err := b.readLine()
			if err != nil {
				return n, err
			}
			line, err = crlfLine(line)
			if err != nil {
				return n, err
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return n, err
			}
			b.excess += int64(len(line)) + 2 - 16 - 2*size
			b.excess = max(b.excess, 0)
			if b.excess > 16<<10 {
				return n, errChunkOverhead
			}
			if size == 0 {
				if err := b.readTrailer(); err != io.EOF {
					return n, err
				}
				return n, io.EOF
			}
			b.remain, b.inChunk = size, true
		}
		if n == len(p) {
			return n, nil
		}
		q := p[n:]
		if int64(len(q)) > b.remain {
			q = q[:b.remain]
		}
		var m int
		if c.r0 < c.r1 {
			m = copy(q, c.rbuf[c.r0:c.r1])
			c.r0 += m
		} else {
			if n > 0 {
				return n, nil
			}
			m, err = c.rwc.Read(q)
			if m == 0 {
				if err == io.EOF || err == nil {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		n += m
		b.remain -= int64(m)
		if b.remain == 0 {
			b.inChunk = false
			b.checkEnd = true
		}
	}
}

// fillAtLeast reads until at least k bytes are buffered.
func (c *srvConn) fillAtLeast(k int) error {
	for c.r1-c.r0 < k {
		if err := c.fill(0); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readTrailer reads the trailer section after the last chunk: fields the
// request declared go to its Trailer, others are dropped.
func (b *srvBody) readTrailer() error {
	total := 0
	for {
		line, err := b.readLine()
		if err != nil {
			return err
		}
		total += len(line)
		if total > maxChunkLine*4 {
			return errChunkTooLong
		}
		if len(line) == 2 && line[0] == '\r' || len(line) == 1 {
			return io.EOF
		}
		l, err := crlfLine(line)
		if err != nil {
			return err
		}
		name, value, err := parseTrailerLine(string(l))
		if err != nil {
			return fmt.Errorf("h1: invalid trailer: %w", err)
		}
		k := canonicalKey(name)
		if tr := b.w.req.Trailer; tr != nil {
			if _, ok := tr[k]; ok {
				tr[k] = append(tr[k], value)
			}
		}
	}
}

// Close marks the body closed; what is left unread is dealt with after
// the handler.
func (b *srvBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// discard reads what the handler left of the body, up to
// maxPostHandlerRead bytes, and reports whether the connection can serve
// another request.
func (b *srvBody) discard() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return true
	}
	if b.err != nil || b.w.continueOwed() {
		// A failed body, or one the client waits for a 100 Continue to
		// send: the connection cannot serve another request.
		return false
	}
	if !b.chunked && b.remain > maxPostHandlerRead {
		return false
	}
	// What is left must come within the header timeout when nothing else
	// bounds it (no ReadTimeout): the handler no longer waits for it.
	if d := b.c.srv.headerTimeout(); d > 0 && b.c.srv.cfg().ReadTimeout <= 0 {
		b.c.rwc.SetReadDeadline(time.Now().Add(d))
	}
	var buf [512]byte
	total := 0
	for total <= maxPostHandlerRead {
		n, err := b.readLocked(buf[:])
		total += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
