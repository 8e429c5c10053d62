package testutil

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backend is a loopback HTTP server started by HTTPBackend. Every response
// names the backend that produced it, in the body ("name\n") and in the
// X-Backend header, and the backend records what it received.
//
// Paths with special behavior (any other path answers "name\n"):
//
//	/slow?ms=N      waits N milliseconds (at most 60000), then answers
//	/size?n=N       answers a body of exactly N bytes (at most 1 GiB)
//	/status?code=N  answers with status code N
//	/echo           answers the request body (at most 64 MiB)
//	/ws             with "Upgrade: websocket", answers "101 Switching
//	                Protocols" and then echoes raw bytes on the hijacked
//	                connection (no websocket framing); without it, 400
type Backend struct {
	// Addr is the host:port the backend listens on; it stays the same
	// across Restart.
	Addr string
	// Name is the name the backend answers with.
	Name string

	requests atomic.Int64

	mu   sync.Mutex
	seen []Request
	cur  *httpServer
}

// Request is what a Backend recorded of a request it received.
type Request struct {
	// Method is the request method.
	Method string
	// URI is the request target, as in http.Request.RequestURI.
	URI string
	// Host is the Host header (or the host of an absolute target).
	Host string
	// Proto is the protocol version, such as "HTTP/1.1".
	Proto string
	// RemoteAddr is the address of the peer that sent the request.
	RemoteAddr string
	// Header is a copy of the request header.
	Header http.Header
}

const (
	// maxSeen bounds the requests a Backend remembers.
	maxSeen = 4096
	// maxEcho bounds the body /echo sends back.
	maxEcho = 64 << 20
)

// HTTPBackend starts a Backend named name on 127.0.0.1 with a free port. It
// is closed by tb.Cleanup.
func HTTPBackend(tb testing.TB, name string) *Backend {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: listen: %v", err)
	}
	b := &Backend{Addr: ln.Addr().String(), Name: name}
	b.start(ln)
	tb.Cleanup(b.Close)
	return b
}

// URL returns "http://" + b.Addr.
func (b *Backend) URL() string { return "http://" + b.Addr }

// Requests returns the number of requests received so far, across
// restarts.
func (b *Backend) Requests() int64 { return b.requests.Load() }

// LastHeader returns a copy of the header of the last request received, or
// nil before any request.
func (b *Backend) LastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return nil
	}
	return b.seen[len(b.seen)-1].Header.Clone()
}

// LastRequest returns the last request received, and false before any
// request.
func (b *Backend) LastRequest() (Request, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return Request{}, false
	}
	r := b.seen[len(b.seen)-1]
	r.Header = r.Header.Clone()
	return r, true
}

// History returns the requests received so far, oldest first (the most
// recent few thousand).
func (b *Backend) History() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Request, len(b.seen))
	for i, r := range b.seen {
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// Close kills the backend: it closes the listener, so that new connections
// are refused, resets every open connection (including upgraded ones) and
// waits for the handlers to return. It may be called more than once.
func (b *Backend) Close() {
	b.mu.Lock()
	s := b.cur
	b.cur = nil
	b.mu.Unlock()
	if s != nil {
		s.kill()
	}
}

// Restart closes the backend if it is running and listens again on the same
// address, retrying for a few seconds while the port is not yet free. The new
// server is closed by tb.Cleanup (as well as by the cleanup of HTTPBackend).
func (b *Backend) Restart(tb testing.TB) {
	tb.Helper()
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ln, err := net.Listen("tcp", b.Addr)
		if err == nil {
			b.start(ln)
			tb.Cleanup(b.Close)
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testutil: restarting backend %s on %s: %v", b.Name, b.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *Backend) start(ln net.Listener) {
	s := &httpServer{b: b, ln: ln, conns: make(map[*trackedConn]struct{})}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	b.mu.Lock()
	b.cur = s
	b.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(trackingListener{ln, s})
	}()
}

func (b *Backend) record(r *http.Request) {
	b.requests.Add(1)
	rec := Request{
		Method:     r.Method,
		URI:        r.RequestURI,
		Host:       r.Host,
		Proto:      r.Proto,
		RemoteAddr: r.RemoteAddr,
		Header:     r.Header.Clone(),
	}
	b.mu.Lock()
	if len(b.seen) >= maxSeen {
		b.seen = append(b.seen[:0], b.seen[len(b.seen)-maxSeen/2:]...)
	}
	b.seen = append(b.seen, rec)
	b.mu.Unlock()
}

// httpServer is one incarnation of a Backend: from start to kill.
type httpServer struct {
	b   *Backend
	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	killed bool
	wg     sync.WaitGroup // Serve and the handlers
}

func (s *httpServer) kill() {
	s.mu.Lock()
	s.killed = true
	s.ln.Close()
	for c := range s.conns {
		c.reset()
	}
	s.mu.Unlock()
	s.srv.Close()
	s.wg.Wait()
}

func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.killed {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	b := s.b
	b.record(r)
	w.Header().Set("X-Backend", b.Name)
	body := b.Name + "\n"
	q := r.URL.Query()
	switch r.URL.Path {
	case "/slow":
		ms, _ := strconv.Atoi(q.Get("ms"))
		ms = min(max(ms, 0), 60000)
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	case "/size":
		n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
		n = min(max(n, 0), 1<<30)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		for n > 0 {
			k := min(n, int64(len(filler)))
			if _, err := w.Write(filler[:k]); err != nil {
				return
			}
			n -= k
		}
		return
	case "/status":
		code, _ := strconv.Atoi(q.Get("code"))
		if code < 100 || code > 999 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
		return
	case "/echo":
		// Read it all first: an HTTP/1 handler cannot read the body
		// once it has started the response.
		data, err := io.ReadAll(io.LimitReader(r.Body, maxEcho+1))
		if err != nil {
			return
		}
		if len(data) > maxEcho {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return
	case "/ws":
		s.serveUpgrade(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, body)
}

// filler is the content of /size bodies.
var filler = bytes.Repeat([]byte("0123456789abcdef"), 2048)

func (s *httpServer) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "expected Upgrade: websocket", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, err = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: %s\r\n\r\n", s.b.Name)
	if err != nil {
		return
	}
	// Bytes the client sent right after its request may already be buffered.
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		if _, err := c.Write(p); err != nil {
			return
		}
	}
	echo(c)
}

// trackingListener records the connections it accepts so that kill can
// reset them, including the hijacked ones http.Server no longer tracks.
type trackingListener struct {
	net.Listener
	s *httpServer
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	killed := l.s.killed
	if !killed {
		l.s.conns[tc] = struct{}{}
	}
	l.s.mu.Unlock()
	if killed {
		tc.reset()
		return nil, net.ErrClosed
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *httpServer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, for the upgrade echo.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reset closes the connection with an RST rather than a FIN.
func (c *trackedConn) reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Conn.Close()
}
