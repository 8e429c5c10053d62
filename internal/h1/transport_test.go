package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// newTestTransport returns a Transport with the given header timeout and
// the default fallback, with its idle connections closed on cleanup.
func newTestTransport(t *testing.T, headerTimeout time.Duration) *Transport {
	rt := &Transport{ResponseHeaderTimeout: headerTimeout}
	t.Cleanup(rt.CloseIdleConnections)
	return rt
}

func get(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// captureServer records the raw bytes of each request (headers and
// Content-Length body) and answers 200 with no body.
func captureServer(t *testing.T, got chan<- []byte) *testutil.RawServer {
	return testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			var raw bytes.Buffer
			length := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				raw.WriteString(line)
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
					length, _ = strconv.Atoi(strings.TrimSpace(v))
				}
				if line == "\r\n" {
					break
				}
			}
			if _, err := io.CopyN(&raw, br, int64(length)); err != nil {
				return
			}
			got <- raw.Bytes()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
}

// TestWireMatchesNetHTTP compares the bytes the engine sends with those
// of net/http's Transport for the same requests.
func TestWireMatchesNetHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan []byte, 1)
	srv := captureServer(t, got)
	tr := newTestTransport(t, 0)
	std := &http.Transport{DisableCompression: true}
	t.Cleanup(std.CloseIdleConnections)

	kib := strings.Repeat("0123456789abcdef", 64)
	tests := []struct {
		name   string
		method string
		target string // appended to the server's URL
		body   string
		setup  func(r *http.Request)
	}{
		{name: "get", method: "GET", target: "/"},
		{name: "empty method", method: "GET", target: "/", setup: func(r *http.Request) { r.Method = "" }},
		{name: "query", method: "GET", target: "/a/b?x=1&y=%20z"},
		{name: "force query", method: "GET", target: "/q?"},
		{name: "escaped path", method: "GET", target: "/a%2Fb/c%20d"},
		{name: "no path", method: "GET", target: ""},
		{name: "head", method: "HEAD", target: "/h"},
		{name: "delete", method: "DELETE", target: "/d"},
		{name: "options", method: "OPTIONS", target: "/o"},
		{name: "post empty", method: "POST", target: "/p"},
		{name: "put empty", method: "PUT", target: "/p"},
		{name: "patch body", method: "PATCH", target: "/p", body: "{}"},
		{name: "post 1KiB", method: "POST", target: "/p?k=v", body: kib},
		{name: "custom method", method: "PURGE", target: "/x"},
		{name: "headers", method: "GET", target: "/", setup: func(r *http.Request) {
			r.Header.Add("X-Multi", "one")
			r.Header.Add("X-Multi", "two")
			r.Header.Set("Accept", "*/*")
			r.Header.Set("X-Spaces", "  padded\t")
			r.Header.Set("X-Empty", "")
			r.Header.Set("Cookie", "a=b; c=d")
			r.Header["lower-case"] = []string{"kept as is"}
			r.Header.Set("Content-Length", "99")    // ignored: ContentLength rules
			r.Header.Set("Transfer-Encoding", "gz") // ignored
		}},
		{name: "host override", method: "GET", target: "/", setup: func(r *http.Request) { r.Host = "example.com:8443" }},
		{name: "host header ignored", method: "GET", target: "/", setup: func(r *http.Request) { r.Header.Set("Host", "evil") }},
		{name: "idn host", method: "GET", target: "/", setup: func(r *http.Request) { r.Host = "bücher.example" }},
		{name: "ipv6 zone", method: "GET", target: "/", setup: func(r *http.Request) { r.Host = "[fe80::1%eth0]:80" }},
		{name: "invalid host", method: "GET", target: "/", setup: func(r *http.Request) { r.Host = "a b" }},
		{name: "user agent blank", method: "GET", target: "/", setup: func(r *http.Request) { r.Header.Set("User-Agent", "") }},
		{name: "user agent", method: "GET", target: "/", setup: func(r *http.Request) { r.Header.Set("User-Agent", " curl/8 ") }},
		{name: "close", method: "GET", target: "/", setup: func(r *http.Request) { r.Close = true }},
		{name: "idempotency key", method: "POST", target: "/", body: "x", setup: func(r *http.Request) { r.Header.Set("Idempotency-Key", "k1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wire [2][]byte
			for i, rt := range []http.RoundTripper{std, tr} {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, err := http.NewRequest(tt.method, "http://"+srv.Addr+tt.target, body)
				if err != nil {
					t.Fatal(err)
				}
				if tt.setup != nil {
					tt.setup(req)
				}
				if tr == rt && !handles(req) {
					t.Fatal("request not handled by the engine")
				}
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatalf("transport %d: %v", i, err)
				}
				resp.Body.Close()
				wire[i] = <-got
			}
			if !bytes.Equal(wire[0], wire[1]) {
				t.Fatalf("net/http sent\n%q\nthe engine sent\n%q", wire[0], wire[1])
			}
		})
	}
}

// TestRejectsInvalidRequests checks that what net/http refuses to send
// is refused, with nothing written.
func TestRejectsInvalidRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan []byte, 1)
	srv := captureServer(t, got)
	tr := newTestTransport(t, 0)
	tests := []struct {
		name  string
		setup func(r *http.Request)
	}{
		{"CRLF in value", func(r *http.Request) { r.Header.Set("X-A", "a\r\nX-Injected: 1") }},
		{"LF in value", func(r *http.Request) { r.Header["X-A"] = []string{"a\nb"} }},
		{"NUL in value", func(r *http.Request) { r.Header["X-A"] = []string{"a\x00b"} }},
		{"colon in name", func(r *http.Request) { r.Header["X:A"] = []string{"a"} }},
		{"space in name", func(r *http.Request) { r.Header["X A"] = []string{"a"} }},
		{"CRLF in user agent", func(r *http.Request) { r.Header["User-Agent"] = []string{"a\r\nb"} }},
		{"bad method", func(r *http.Request) { r.Method = "GE T" }},
		{"CTL in query", func(r *http.Request) { r.URL.RawQuery = "a\nb" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+srv.Addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(req)
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
				t.Fatal("sent")
			}
		})
	}
	// A valid request then: the server accepts connections in the order
	// they were opened, so its answer proves that none was opened before,
	// and its bytes are the first the server received.
	if code, _, err := get(t, tr, "GET", "http://"+srv.Addr+"/valid", nil); err != nil || code != 200 {
		t.Fatalf("valid request: %d %v", code, err)
	}
	if b := <-got; !bytes.HasPrefix(b, []byte("GET /valid ")) {
		t.Fatalf("server received %q first", b)
	}
	if n := srv.Accepted(); n != 1 {
		t.Fatalf("%d connections opened for invalid requests", n-1)
	}
}

// TestHandles checks which requests the engine takes and which go to the
// fallback transport.
func TestHandles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *http.Request)
		want  bool
	}{
		{"get", func(r *http.Request) {}, true},
		{"https", func(r *http.Request) { r.URL.Scheme = "https" }, true},
		{"small body", func(r *http.Request) { setBody(r, 1024) }, true},
		{"64 KiB body", func(r *http.Request) { setBody(r, MaxBody) }, true},
		{"larger body", func(r *http.Request) { setBody(r, MaxBody+1) }, false},
		{"unknown length", func(r *http.Request) { setBody(r, 10); r.ContentLength = -1 }, false},
		{"zero length with body", func(r *http.Request) { setBody(r, 10); r.ContentLength = 0 }, false},
		{"NoBody", func(r *http.Request) { r.Body = http.NoBody }, true},
		{"chunked", func(r *http.Request) { setBody(r, 10); r.TransferEncoding = []string{"chunked"} }, false},
		{"trailer", func(r *http.Request) { r.Trailer = http.Header{"X": nil} }, false},
		{"upgrade", func(r *http.Request) { r.Header.Set("Connection", "Upgrade"); r.Header.Set("Upgrade", "websocket") }, false},
		{"connection upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive, upgrade") }, false},
		{"expect", func(r *http.Request) { setBody(r, 10); r.Header.Set("Expect", "100-continue") }, false},
		{"connect", func(r *http.Request) { r.Method = "CONNECT" }, false},
		{"other scheme", func(r *http.Request) { r.URL.Scheme = "ftp" }, false},
		{"user info", func(r *http.Request) { r.URL.User = url.User("u") }, false},
		{"nil header", func(r *http.Request) { r.Header = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://127.0.0.1:1/", nil)
			req.RequestURI = ""
			tt.setup(req)
			if got := handles(req); got != tt.want {
				t.Fatalf("handles = %v, want %v", got, tt.want)
			}
		})
	}
}

func setBody(r *http.Request, n int) {
	r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", n)))
	r.ContentLength = int64(n)
}

// TestKeepAlive checks that connections are reused: sequential requests
// share one, concurrent ones use no more than the concurrency.
func TestKeepAlive(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	tr := newTestTransport(t, 0)
	for i := range 20 {
		if code, body, err := get(t, tr, "GET", "http://"+srv.Addr+"/", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// Requests that are not replayed check the idle connection first; a
	// live one passes.
	for i := range 5 {
		if code, body, err := get(t, tr, "POST", "http://"+srv.Addr+"/", strings.NewReader("x")); err != nil || code != 200 || body != "ok" {
			t.Fatalf("POST %d: %d %q %v", i, code, body, err)
		}
	}
	if n := srv.Accepted(); n != 1 {
		t.Fatalf("25 sequential requests used %d connections, want 1", n)
	}

	const concurrency = 8
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				req, _ := http.NewRequest("GET", "http://"+srv.Addr+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "ok" {
					errs <- fmt.Errorf("body %q, %v", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := srv.Accepted(); n > 1+concurrency {
		t.Fatalf("%d concurrent clients used %d connections", concurrency, n-1)
	}
}

// TestStaleConnections checks requests on keep-alive connections the
// server closed: replayable ones are sent again on a new connection, others
// are never sent twice.
func TestStaleConnections(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string
		header   string // an extra header "Key: value"
		drop     bool   // the server reads the second request and closes without an answer
		idle408  bool   // the server sends a 408 on the idle connection, then closes it
		wantErr  bool
		wantSeen int // requests of the method the server saw
	}{
		// The server closes each connection after its first response,
		// leaving the client's copy idle but dead.
		{name: "GET on closed idle connection", method: "GET", wantSeen: 2},
		{name: "HEAD on closed idle connection", method: "HEAD", wantSeen: 2},
		{name: "POST on closed idle connection", method: "POST", body: "once", wantSeen: 2},
		{name: "DELETE on closed idle connection", method: "DELETE", wantSeen: 2},
		// The server's idle timeout sends a 408 before closing.
		{name: "GET after idle 408", method: "GET", idle408: true, wantSeen: 2},
		{name: "POST after idle 408", method: "POST", body: "once", idle408: true, wantSeen: 2},
		// The server takes the second request and closes without answering.
		{name: "GET dropped", method: "GET", drop: true, wantSeen: 3},
		{name: "POST dropped", method: "POST", body: "once", drop: true, wantErr: true, wantSeen: 2},
		{name: "DELETE dropped", method: "DELETE", drop: true, wantErr: true, wantSeen: 2},
		{name: "DELETE with Idempotency-Key dropped", method: "DELETE", header: "Idempotency-Key: 1", drop: true, wantSeen: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			var seen atomic.Int64
			// With idle408, the server sends its 408 once the client's
			// connection is back on the idle stack: sent earlier, it would
			// arrive with the response and never reach the idle path.
			idle := make(chan struct{})
			srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
				if r.Method == tt.method {
					seen.Add(1)
				}
				if tt.drop && n == 1 {
					return false
				}
				if r.Method == "HEAD" {
					io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
				} else {
					io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
				if tt.idle408 {
					<-idle
					io.WriteString(w, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				}
				return tt.drop // without drop, close after the first response
			}))
			tr := newTestTransport(t, 0)
			send := func() (int, error) {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, err := http.NewRequest(tt.method, "http://"+srv.Addr+"/", body)
				if err != nil {
					t.Fatal(err)
				}
				if k, v, ok := strings.Cut(tt.header, ": "); ok {
					req.Header.Set(k, v)
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					return 0, err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			if code, err := send(); err != nil || code != 200 {
				t.Fatalf("first request: %d %v", code, err)
			}
			if tt.idle408 {
				testutil.Eventually(t, "connection idle", func() bool { return tr.idleConns(srv.Addr) == 1 })
				close(idle)
			}
			if !tt.drop {
				// Let the server's close reach the idle connection.
				testutil.Eventually(t, "server connection closed", func() bool {
					return srv.Open() == 0
				})
			}
			code, err := send()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("second request: %d, want an error", code)
				}
			} else if err != nil || code != 200 {
				t.Fatalf("second request: %d %v", code, err)
			}
			if got := seen.Load(); got != int64(tt.wantSeen) {
				t.Fatalf("the server saw %d %s requests, want %d", got, tt.method, tt.wantSeen)
			}
		})
	}
}

// TestHTTPS checks the TLS side: the server name taken from the address
// (the certificate is verified for it), ALPN http/1.1, and connections
// reused.
func TestHTTPS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.TLS.NegotiatedProtocol+"|"+r.TLS.ServerName, true)
		io.WriteString(w, "secure")
	}))
	srv.TLS = ca.ServerConfig(t, "127.0.0.1")
	srv.TLS.NextProtos = []string{"h2", "http/1.1"}
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg := &tls.Config{RootCAs: ca.Pool()}
	tr := &Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	addr := strings.TrimPrefix(srv.URL, "https://")
	for i, method := range []string{"GET", "POST", "GET", "DELETE"} {
		code, body, err := get(t, tr, method, "https://"+addr+"/", nil)
		if err != nil || code != 200 || body != "secure" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// No SNI for an IP address, but the certificate was verified for it.
	if _, ok := protos.Load("http/1.1|"); !ok {
		var seen []string
		protos.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Fatalf("negotiated %v, want http/1.1", seen)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d TLS connections for 4 requests", n)
	}
	if cfg.ServerName != "" || cfg.NextProtos != nil {
		t.Fatal("the configured tls.Config was modified")
	}
}

// TestIdleTimeout checks that an idle connection past the idle timeout
// is closed instead of used, by the take and by the sweep.
func TestIdleTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	tr := newTestTransport(t, 0)
	h := tr.host(hostKey{addr: srv.Addr})
	age := func() {
		h.mu.Lock()
		for _, pc := range h.idle {
			pc.idleAt = pc.idleAt.Add(-IdleTimeout)
		}
		h.mu.Unlock()
	}
	if _, _, err := get(t, tr, "GET", "http://"+srv.Addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	age()
	if _, _, err := get(t, tr, "GET", "http://"+srv.Addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	if n := srv.Accepted(); n != 2 {
		t.Fatalf("%d connections, want 2 (the expired one replaced)", n)
	}
	age()
	h.sweepIdle()
	h.mu.Lock()
	idle, armed := len(h.idle), h.armed
	h.mu.Unlock()
	if idle != 0 || armed {
		t.Fatalf("after the sweep: %d idle, sweep armed %v", idle, armed)
	}
	testutil.Eventually(t, "server connections closed", func() bool {
		return srv.Open() == 0
	})
}

// TestBodyClose checks that closing a body early closes the connection
// (no draining), that Close is idempotent, and that it interrupts a Read
// blocked in another goroutine.
func TestBodyClose(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		w.(net.Conn).Read(make([]byte, 1)) // until the client closes
		return false
	}))
	tr := newTestTransport(t, 0)
	req, _ := http.NewRequest("GET", "http://"+srv.Addr+"/stall-body", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "partial" {
		t.Fatalf("read %q, %v", buf, err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		readErr <- err
	}()
	testutil.WaitBlocked(t, "h1.(*body).Read")
	for range 3 {
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("blocked Read returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt the blocked Read")
	}
	if _, err := resp.Body.Read(buf); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Fatalf("Read after Close: %v", err)
	}
	if tr.idleConns(srv.Addr) != 0 {
		t.Fatal("a connection closed early went back to the idle stack")
	}
}

// TestNoGoroutines checks that a round trip on the engine's fast path
// starts no goroutine.
func TestNoGoroutines(t *testing.T) {
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	tr := newTestTransport(t, 0)
	if _, _, err := get(t, tr, "GET", "http://"+srv.Addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.Addr+"/", nil)
	before := runtime.NumGoroutine()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// The response is out and its body unread: with net/http's Transport
	// the connection's reading and writing goroutines would be running.
	after := runtime.NumGoroutine()
	resp.Body.Close()
	if after > before {
		t.Fatalf("%d goroutines during the round trip, %d before", after, before)
	}
}

// idleConns returns the number of idle connections to the plain HTTP
// server at addr.
func (t *Transport) idleConns(addr string) int {
	h := t.host(hostKey{addr: addr})
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// BenchmarkRoundTrip measures round trips of the engine alone, and of
// net/http's Transport configured as its fallback, to a loopback server:
// GET (replayed if a reused connection fails) and DELETE (not replayed, so
// each reused connection is first peeked at).
func BenchmarkRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"2"}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/"
	tr := &Transport{}
	for _, rt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"engine", tr}, {"net-http", tr.fallbackTransport()}} {
		for _, method := range []string{"GET", "DELETE"} {
			b.Run(rt.name+"/"+method, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req, _ := http.NewRequest(method, url, nil)
					resp, err := rt.rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	tr.CloseIdleConnections()
}

// deadlineConn counts the read deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	set *atomic.Int64
}

func (c deadlineConn) SetReadDeadline(t time.Time) error {
	c.set.Add(1)
	return c.Conn.SetReadDeadline(t)
}

// TestHeaderDeadlineKept checks that the response header deadline set
// for one request serves the next ones on the connection, is cleared for
// a body read from the connection, and still bounds the wait.
func TestHeaderDeadlineKept(t *testing.T) {
	testutil.CheckLeaks(t)
	big := strings.Repeat("b", 2*BufferSize)
	release := make(chan struct{})
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		switch r.URL.Path {
		case "/big":
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
		case "/silent":
			<-release
			return false
		default:
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	}))
	var set atomic.Int64
	var d net.Dialer
	const timeout = 300 * time.Millisecond
	tr := newTestTransport(t, timeout)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return deadlineConn{c, &set}, nil
	}
	url := "http://" + srv.Addr
	for i := range 10 {
		if code, body, err := get(t, tr, "GET", url+"/", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// The requests take far less than timeout/8 on loopback; a slow
	// machine may take one more deadline.
	if n := set.Load(); n < 1 || n > 2 {
		t.Fatalf("%d read deadlines set for 10 small responses, want 1", n)
	}
	set.Store(0)
	if code, body, err := get(t, tr, "GET", url+"/big", nil); err != nil || code != 200 || body != big {
		t.Fatalf("big response: %d, %d bytes, %v", code, len(body), err)
	}
	if n := set.Load(); n != 1 {
		t.Fatalf("%d read deadline changes for a body larger than the buffer, want 1 (cleared)", n)
	}
	// Past timeout/8 the kept deadline is too close: a new one is set.
	time.Sleep(timeout/8 + 10*time.Millisecond)
	set.Store(0)
	for i := range 2 {
		if code, body, err := get(t, tr, "GET", url+"/", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if n := set.Load(); n != 1 {
		t.Fatalf("%d read deadlines set, want 1", n)
	}
	if srv.Accepted() != 1 {
		t.Fatalf("%d connections, want 1", srv.Accepted())
	}
	// The wait for headers is still bounded.
	start := time.Now()
	_, _, err := get(t, tr, "GET", url+"/silent", nil)
	close(release)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent server: %v, want a timeout", err)
	}
	if el := time.Since(start); el < timeout-50*time.Millisecond {
		t.Fatalf("timed out after %v, before the %v timeout", el, timeout)
	}
}

// countingCache is a tls.ClientSessionCache that counts the sessions put.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int64
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// TestHTTPSResumption checks that a new connection to a TLS server
// resumes the session of an earlier one, unless the configuration has a
// VerifyPeerCertificate callback, which resumption would skip, and that a
// configured ClientSessionCache is the one used.
func TestHTTPSResumption(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	var resumed sync.Map // request number → DidResume on the server side
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resumed.Store(r.URL.Query().Get("n"), r.TLS.DidResume)
		io.WriteString(w, "secure")
	}))
	srv.TLS = ca.ServerConfig(t, "127.0.0.1")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")

	verified := 0
	userCache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	tests := []struct {
		name       string
		cfg        *tls.Config
		wantResume bool
	}{
		{"default", &tls.Config{RootCAs: ca.Pool()}, true},
		{"TLS 1.2", &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}, true},
		{"VerifyConnection", &tls.Config{RootCAs: ca.Pool(), VerifyConnection: func(tls.ConnectionState) error { return nil }}, true},
		{"VerifyPeerCertificate", &tls.Config{RootCAs: ca.Pool(), VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error {
			verified++
			return nil
		}}, false},
		{"SessionTicketsDisabled", &tls.Config{RootCAs: ca.Pool(), SessionTicketsDisabled: true}, false},
		{"own cache", &tls.Config{RootCAs: ca.Pool(), ClientSessionCache: userCache}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A new connection for each request.
			tr := &Transport{TLSClientConfig: tt.cfg, DisableKeepAlives: true}
			t.Cleanup(tr.CloseIdleConnections)
			for i := range 3 {
				n := tt.name + strconv.Itoa(i)
				code, body, err := get(t, tr, "GET", "https://"+addr+"/?n="+url.QueryEscape(n), nil)
				if err != nil || code != 200 || body != "secure" {
					t.Fatalf("request %d: %d %q %v", i, code, body, err)
				}
				v, _ := resumed.Load(n)
				if want := i > 0 && tt.wantResume; v != want {
					t.Fatalf("request %d: resumed %v, want %v", i, v, want)
				}
			}
			if tt.cfg.ClientSessionCache != userCache && tt.cfg.ClientSessionCache != nil {
				t.Fatal("the configured tls.Config was modified")
			}
		})
	}
	if verified != 3 {
		t.Errorf("VerifyPeerCertificate called %d times for 3 connections", verified)
	}
	if userCache.puts.Load() == 0 {
		t.Error("the configured ClientSessionCache was not used")
	}
}

// BenchmarkRoundTripNewTLS measures round trips that each open a new TLS
// connection to a loopback server: resuming the previous session (the
// default) or with a full handshake (session tickets disabled).
func BenchmarkRoundTripNewTLS(b *testing.B) {
	ca := testutil.NewCA(b)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = ca.ServerConfig(b, "127.0.0.1")
	srv.StartTLS()
	b.Cleanup(srv.Close)
	for _, bc := range []struct {
		name     string
		disabled bool
	}{{"resumed", false}, {"full", true}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := &Transport{DisableKeepAlives: true,
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), SessionTicketsDisabled: bc.disabled}}
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
