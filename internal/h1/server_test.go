package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// startServer serves h with a Server configured by cfg on a loopback
// listener, and returns it and its address; the test's cleanup closes it.
func startServer(t *testing.T, cfg *http.Server, hot time.Duration) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: cfg, HotWindow: hot}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readResp(t, br, "GET")
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestServerKeepAliveParks: an idle keep-alive connection is parked after
// the hot window and serves its next request when woken.
func TestServerKeepAliveParks(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	s, addr := startServer(t, &http.Server{Handler: h}, 10*time.Millisecond)
	c, br := dial(t, addr)
	for i := range 3 {
		resp, body := roundTrip(t, c, br, fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		if resp.StatusCode != 200 || body != fmt.Sprintf("hello /%d", i) || resp.ContentLength != int64(len(body)) {
			t.Fatalf("response %d %q (length %d)", resp.StatusCode, body, resp.ContentLength)
		}
		waitFor(t, "the connection parked", func() bool { _, p := s.Conns(); return p == 1 })
	}
}

// TestServerPipelining: requests sent at once are answered in order.
func TestServerPipelining(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"+
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"+
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/a:", "/b:xyz", "/c:hi", "/d:"} {
		if _, body := readResp(t, br, "GET"); body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
}

// TestServerResponseFraming: Content-Length for short responses, chunked
// for long or flushed ones, nothing for HEAD, close-delimited for
// HTTP/1.0.
func TestServerResponseFraming(t *testing.T) {
	long := strings.Repeat("z", 5000)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			io.WriteString(w, "short")
		case "/long":
			io.WriteString(w, long)
		case "/flush":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "t")
			w.Header().Set("X-Sum", "42")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, br := dial(t, addr)
	for _, tc := range []struct {
		method, path string
		body         string
		length       int64
		chunked      bool
	}{
		{"GET", "/short", "short", 5, false},
		{"GET", "/long", long, -1, true},
		{"GET", "/flush", "ab", -1, true},
		{"GET", "/trailer", "t", -1, true},
		{"HEAD", "/short", "", 5, false},
		{"GET", "/nocontent", "", 0, false},
	} {
		io.WriteString(c, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := readResp(t, br, tc.method)
		chunked := len(resp.TransferEncoding) > 0
		if body != tc.body || resp.ContentLength != tc.length || chunked != tc.chunked || resp.Close {
			t.Errorf("%s %s: body %d bytes, length %d, chunked %v, close %v", tc.method, tc.path, len(body), resp.ContentLength, chunked, resp.Close)
		}
		if tc.path == "/trailer" && resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer %v", resp.Trailer)
		}
	}
	c2, br2 := dial(t, addr)
	resp, body := roundTrip(t, c2, br2, "GET /long HTTP/1.0\r\n\r\n")
	if body != long || !resp.Close {
		t.Errorf("HTTP/1.0: %d bytes, close %v", len(body), resp.Close)
	}
	c3, br3 := dial(t, addr)
	resp, _ = roundTrip(t, c3, br3, "GET /short HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive: close %v, Connection %q", resp.Close, resp.Header.Get("Connection"))
	}
	if resp, _ = roundTrip(t, c3, br3, "GET /short HTTP/1.0\r\n\r\n"); !resp.Close {
		t.Error("HTTP/1.0 without keep-alive: connection kept")
	}
}

// TestServerExpectContinue: 100 Continue goes out on the first read of
// the body, never when the handler answers without reading it.
func TestServerExpectContinue(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/no" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, br := dial(t, addr)
	io.WriteString(c, "POST /yes HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 100 {
		t.Fatalf("status %d, want 100", resp.StatusCode)
	}
	io.WriteString(c, "body")
	if resp, body := readResp(t, br, "POST"); resp.StatusCode != 200 || body != "body" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	io.WriteString(c, "POST /no HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("status %d close %v, want 403 and a close", resp.StatusCode, resp.Close)
	}
	c2, br2 := dial(t, addr)
	if resp, _ := roundTrip(t, c2, br2, "POST / HTTP/1.1\r\nHost: x\r\nExpect: other\r\nContent-Length: 1\r\n\r\nx"); resp.StatusCode != 417 {
		t.Fatalf("status %d, want 417", resp.StatusCode)
	}
}

// TestServerHijack: the hijacked connection carries the bytes that
// followed the request, and ConnState sees New, Active, Hijacked.
func TestServerHijack(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	cfg := &http.Server{Handler: h, ConnState: func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		states = append(states, st)
		mu.Unlock()
	}}
	_, addr := startServer(t, cfg, 0)
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	line, _ := br.ReadString('\n')
	if line != "echo early\n" {
		t.Fatalf("got %q", line)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != fmt.Sprint([]http.ConnState{http.StateNew, http.StateActive, http.StateHijacked}) {
		t.Errorf("states %v", states)
	}
}

// TestServerConnStateOrder: New, Active, Idle per request (parked or
// not), Closed.
func TestServerConnStateOrder(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	cfg := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		},
	}
	s, addr := startServer(t, cfg, 5*time.Millisecond)
	c, br := dial(t, addr)
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "parked", func() bool { _, p := s.Conns(); return p == 1 })
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	waitFor(t, "closed", func() bool { n, _ := s.Conns(); return n == 0 })
	mu.Lock()
	defer mu.Unlock()
	want := []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateClosed}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states %v, want %v", states, want)
	}
}

// TestServerContextCancelledOnClose: the request's context ends when the
// client closes its connection.
func TestServerContextCancelledOnClose(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the context was not cancelled")
	}
}

// TestServerPanic: a panic closes the connection and is logged, except
// http.ErrAbortHandler.
func TestServerPanic(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	})
	cfg := &http.Server{Handler: h, ErrorLog: log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), "", 0)}
	_, addr := startServer(t, cfg, 0)
	for _, path := range []string{"/abort", "/boom"} {
		c, br := dial(t, addr)
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(br, nil); err == nil {
			t.Errorf("%s: got a response", path)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := logs.String(); strings.Count(got, "panic serving") != 1 || !strings.Contains(got, "boom") {
		t.Errorf("log %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestServerShutdown: idle (parked) connections are closed at once, an
// active request finishes, then Shutdown returns.
func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	})
	s, addr := startServer(t, &http.Server{Handler: h}, 5*time.Millisecond)
	idle, ibr := dial(t, addr)
	roundTrip(t, idle, ibr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "parked", func() bool { _, p := s.Conns(); return p == 1 })
	busy, bbr := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "two connections", func() bool { n, _ := s.Conns(); return n == 2 })
	time.Sleep(20 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := ibr.ReadByte(); err == nil {
		t.Error("the idle connection got bytes, not a close")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request active", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if resp, body := readResp(t, bbr, "GET"); body != "done" || !resp.Close {
		t.Errorf("active request: %q, close %v", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestServerIdleTimeout: a parked connection is closed after IdleTimeout.
func TestServerIdleTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	s, addr := startServer(t, &http.Server{Handler: h, IdleTimeout: 200 * time.Millisecond}, 5*time.Millisecond)
	c, br := dial(t, addr)
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v", d)
	}
	waitFor(t, "no connection", func() bool { n, _ := s.Conns(); return n == 0 })
}

// TestServerLimits: header bytes over MaxHeaderBytes get 431, a slow
// header is cut at ReadHeaderTimeout.
func TestServerLimits(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	_, addr := startServer(t, &http.Server{Handler: h, MaxHeaderBytes: 1024, ReadHeaderTimeout: 200 * time.Millisecond}, 0)
	c, br := dial(t, addr)
	resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8000)+"\r\n\r\n")
	if resp.StatusCode != 431 {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
	c2, br2 := dial(t, addr)
	io.WriteString(c2, "GET / HTTP/1.1\r\n")
	start := time.Now()
	if _, err := br2.ReadByte(); err == nil {
		t.Error("a response to half a header")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cut after %v", d)
	}
}

// TestServerUnreadBodyBounded: the rest of a body the handler left unread
// must come within ReadHeaderTimeout; a client that stalls gets its
// response with Connection: close.
func TestServerUnreadBodyBounded(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no") })
	_, addr := startServer(t, &http.Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond}, 0)
	c, br := dial(t, addr)
	start := time.Now()
	resp, body := roundTrip(t, c, br, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	if body != "no" || !resp.Close {
		t.Errorf("body %q, close %v", body, resp.Close)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answered after %v", d)
	}
}

// TestServerTLS: HTTPS with HTTP/1.1 through ALPN, the request's TLS state
// set, and keep-alive over TLS (served without parking).
func TestServerTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.NegotiatedProtocol != "http/1.1" {
			t.Errorf("TLS state %+v", r.TLS)
		}
		io.WriteString(w, "secure")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: &http.Server{Handler: h, TLSConfig: ca.ServerConfig(t, "lb.test")}, HotWindow: time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig("lb.test")}
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 2 {
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "secure" || resp.ProtoMajor != 1 {
			t.Fatalf("%s %q", resp.Proto, b)
		}
		time.Sleep(20 * time.Millisecond) // past the hot window
	}
	if n, _ := s.Conns(); n != 1 {
		t.Errorf("%d connections, want 1 kept alive", n)
	}
}

// TestServerContextCancelledOnTLSClose: over TLS too, a client's close
// (close_notify, then FIN) cancels the request's context.
func TestServerContextCancelledOnTLSClose(t *testing.T) {
	ca := testutil.NewCA(t)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: &http.Server{Handler: h, TLSConfig: ca.ServerConfig(t, "lb.test")}}
	done := make(chan error, 1)
	go func() { done <- s.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	c, err := tls.Dial("tcp", ln.Addr().String(), ca.ClientConfig("lb.test"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the context was not cancelled")
	}
}
