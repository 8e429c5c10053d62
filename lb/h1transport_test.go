package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
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

// rawServer is a loopback TCP server whose connections are served by a
// handler given the raw connection; it counts connections and closes them
// all on cleanup.
type rawServer struct {
	ln    net.Listener
	addr  string
	conns atomic.Int64
	mu    sync.Mutex
	open  map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startRaw(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String(), open: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
				}()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// serveHTTP returns a rawServer handler that reads requests and lets
// respond answer each with raw bytes; respond returns false to end the
// connection. n counts the requests of the connection from 0.
func serveHTTP(respond func(w io.Writer, r *http.Request, n int) bool) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for n := 0; ; n++ {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if !respond(c, r, n) {
				return
			}
		}
	}
}

func plainDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// newTestH1 returns an engine like the ReverseProxy's default, dialing
// directly, with its idle connections closed on cleanup.
func newTestH1(t *testing.T, headerTimeout time.Duration) *h1Transport {
	p := &ReverseProxy{ServerTimeout: headerTimeout}
	rt := p.newTransport(nil, plainDial).(*h1Transport)
	t.Cleanup(rt.CloseIdleConnections)
	return rt
}

func h1Get(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader) (int, string, error) {
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
func captureServer(t *testing.T, got chan<- []byte) *rawServer {
	return startRaw(t, func(c net.Conn, br *bufio.Reader) {
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

// TestH1WireMatchesNetHTTP compares the bytes the engine sends with those
// of net/http's Transport for the same requests.
func TestH1WireMatchesNetHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan []byte, 1)
	srv := captureServer(t, got)
	h1 := newTestH1(t, 0)
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
			for i, rt := range []http.RoundTripper{std, h1} {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, err := http.NewRequest(tt.method, "http://"+srv.addr+tt.target, body)
				if err != nil {
					t.Fatal(err)
				}
				if tt.setup != nil {
					tt.setup(req)
				}
				if h1 == rt && !h1Handles(req) {
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

// TestH1RejectsInvalidRequests checks that what net/http refuses to send
// is refused, with nothing written.
func TestH1RejectsInvalidRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan []byte, 1)
	srv := captureServer(t, got)
	h1 := newTestH1(t, 0)
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
			req, err := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(req)
			if resp, err := h1.RoundTrip(req); err == nil {
				resp.Body.Close()
				t.Fatal("sent")
			}
		})
	}
	select {
	case b := <-got:
		t.Fatalf("server received %q", b)
	case <-time.After(50 * time.Millisecond):
	}
	if n := srv.conns.Load(); n != 0 {
		t.Fatalf("%d connections opened for invalid requests", n)
	}
}

// TestH1Handles checks which requests the engine takes and which go to the
// fallback transport.
func TestH1Handles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *http.Request)
		want  bool
	}{
		{"get", func(r *http.Request) {}, true},
		{"https", func(r *http.Request) { r.URL.Scheme = "https" }, true},
		{"small body", func(r *http.Request) { setBody(r, 1024) }, true},
		{"64 KiB body", func(r *http.Request) { setBody(r, h1MaxBody) }, true},
		{"larger body", func(r *http.Request) { setBody(r, h1MaxBody+1) }, false},
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
			if got := h1Handles(req); got != tt.want {
				t.Fatalf("h1Handles = %v, want %v", got, tt.want)
			}
		})
	}
}

func setBody(r *http.Request, n int) {
	r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", n)))
	r.ContentLength = int64(n)
}

// TestH1KeepAlive checks that connections are reused: sequential requests
// share one, concurrent ones use no more than the concurrency.
func TestH1KeepAlive(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := startRaw(t, serveHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	h1 := newTestH1(t, 0)
	for i := range 20 {
		if code, body, err := h1Get(t, h1, "GET", "http://"+srv.addr+"/", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// Requests that are not replayed check the idle connection first; a
	// live one passes.
	for i := range 5 {
		if code, body, err := h1Get(t, h1, "POST", "http://"+srv.addr+"/", strings.NewReader("x")); err != nil || code != 200 || body != "ok" {
			t.Fatalf("POST %d: %d %q %v", i, code, body, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
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
				req, _ := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
				resp, err := h1.RoundTrip(req)
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
	if n := srv.conns.Load(); n > 1+concurrency {
		t.Fatalf("%d concurrent clients used %d connections", concurrency, n-1)
	}
}

// TestH1StaleConnections checks requests on keep-alive connections the
// server closed: replayable ones are sent again on a new connection, others
// are never sent twice.
func TestH1StaleConnections(t *testing.T) {
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
			srv := startRaw(t, serveHTTP(func(w io.Writer, r *http.Request, n int) bool {
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
					time.Sleep(20 * time.Millisecond)
					io.WriteString(w, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				}
				return tt.drop // without drop, close after the first response
			}))
			h1 := newTestH1(t, 0)
			send := func() (int, error) {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, err := http.NewRequest(tt.method, "http://"+srv.addr+"/", body)
				if err != nil {
					t.Fatal(err)
				}
				if k, v, ok := strings.Cut(tt.header, ": "); ok {
					req.Header.Set(k, v)
				}
				resp, err := h1.RoundTrip(req)
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
			if !tt.drop {
				// Let the server's close reach the idle connection.
				testutil.Eventually(t, "server connection closed", func() bool {
					srv.mu.Lock()
					defer srv.mu.Unlock()
					return len(srv.open) == 0
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

// scripted is a server answering each path with a canned raw response.
func scripted(t *testing.T) *rawServer {
	return startRaw(t, serveHTTP(func(w io.Writer, r *http.Request, n int) bool {
		switch r.URL.Path {
		case "/length":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlength")
		case "/chunked":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nchu\r\n4\r\nnked\r\n0\r\nX-T: done\r\n\r\n")
		case "/close":
			io.WriteString(w, "HTTP/1.0 200 OK\r\n\r\nclose-delimited")
			return false
		case "/head":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		case "/204":
			io.WriteString(w, "HTTP/1.1 204 No Content\r\n\r\n")
		case "/304":
			io.WriteString(w, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
		case "/103":
			io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 102 Processing\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		case "/garbage":
			io.WriteString(w, "this is not HTTP\r\n\r\n")
			return false
		case "/extra":
			// A broken server: more bytes than the response.
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextraGARBAGE")
		case "/huge-header":
			io.WriteString(w, "HTTP/1.1 200 OK\r\n")
			for range h1MaxHeaderBytes/1000 + 1 {
				io.WriteString(w, "X-Big: "+strings.Repeat("b", 1000)+"\r\n")
			}
			io.WriteString(w, "Content-Length: 0\r\n\r\n")
			return false
		case "/101":
			io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
			return false
		case "/slow":
			time.Sleep(2 * time.Second)
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
		case "/stall-body":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			w.(net.Conn).Read(make([]byte, 1)) // until the client closes
			return false
		default:
			io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
		return true
	}))
}

// closeIdle closes the idle server connections of proxy's transports.
func closeIdle(proxy *ReverseProxy) {
	proxy.proxies.Range(func(_, v any) bool {
		if ci, ok := v.(*httputil.ReverseProxy).Transport.(*poolTransport).base.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
		return true
	})
}

// startProxy serves proxy on a loopback http.Server, closed on cleanup.
func startProxy(t *testing.T, proxy *ReverseProxy) string {
	t.Helper()
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		proxy.Close()
	})
	return srv.URL
}

// TestH1ResponseForms sends requests through a ReverseProxy to a server
// answering in the various forms HTTP/1.x allows, then checks that the
// connection is reused or closed as it should be.
func TestH1ResponseForms(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool, ServerTimeout: 300 * time.Millisecond}
	url := startProxy(t, proxy)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	t.Cleanup(func() { closeIdle(proxy) })

	tests := []struct {
		method   string
		path     string
		code     int
		body     string
		trailer  string
		newConns int64 // server connections opened by this request and the follow-up one
	}{
		{"GET", "/length", 200, "length", "", 0},
		{"GET", "/chunked", 200, "chunked", "done", 0},
		{"GET", "/close", 200, "close-delimited", "", 1},
		{"HEAD", "/head", 200, "", "", 0},
		{"GET", "/204", 204, "", "", 0},
		{"GET", "/304", 304, "", "", 0},
		{"GET", "/103", 200, "final", "", 0},
		{"GET", "/garbage", 502, "", "", 1},
		{"GET", "/extra", 200, "extra", "", 1},
		{"GET", "/huge-header", 502, "", "", 1},
		{"GET", "/101", 502, "", "", 1},
		{"GET", "/slow", 504, "", "", 1},
	}
	// Warm up: one idle connection.
	if code, _, err := get1(t, c, url+"/length"); code != 200 || err != nil {
		t.Fatal(code, err)
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			before := srv.conns.Load()
			req, _ := http.NewRequest(tt.method, url+tt.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.code < 500 && string(b) != tt.body {
				t.Fatalf("body %q, want %q", b, tt.body)
			}
			if got := resp.Trailer.Get("X-T"); got != tt.trailer {
				t.Fatalf("trailer %q, want %q", got, tt.trailer)
			}
			// The next request reuses the connection unless it had to close.
			if code, body, _ := get1(t, c, url+"/length"); code != 200 || body != "length" {
				t.Fatalf("follow-up request: %d %q", code, body)
			}
			if got := srv.conns.Load() - before; got != tt.newConns {
				t.Fatalf("%d new server connections, want %d", got, tt.newConns)
			}
			if a := pool.Status()[0].Active; a != 0 {
				t.Fatalf("%d requests still active", a)
			}
		})
	}
}

func get1(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestH1ClientCancel checks that a client going away aborts the wait for a
// slow response, and the read of a stalled body, and ends the lease.
func TestH1ClientCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool}
	url := startProxy(t, proxy)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	for _, path := range []string{"/slow", "/stall-body"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", url+path, nil)
			done := make(chan error, 1)
			go func() {
				resp, err := tr.RoundTrip(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			testutil.Eventually(t, "request active", func() bool { return pool.Status()[0].Active == 1 })
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			cancel()
			if err := <-done; err == nil {
				t.Fatal("canceled request succeeded")
			}
			testutil.Eventually(t, "lease ended", func() bool { return pool.Status()[0].Active == 0 })
			if d := time.Since(start); d > time.Second {
				t.Fatalf("cancel took %v", d)
			}
		})
	}
}

// TestH1Bodies sends large and small bodies both ways through a
// ReverseProxy: the engine's and the fallback's.
func TestH1Bodies(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "b")
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: backend.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool}
	url := startProxy(t, proxy)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	t.Cleanup(func() { closeIdle(proxy) })

	// 8 MiB down.
	resp, err := c.Get(url + "/size?n=" + strconv.Itoa(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 8<<20 {
		t.Fatalf("8 MiB response: %d bytes, %v", n, err)
	}

	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	tests := []struct {
		name    string
		size    int
		chunked bool
	}{
		{"1 KiB", 1 << 10, false},
		{"64 KiB", h1MaxBody, false},
		{"1 MiB (fallback)", 1 << 20, false},
		{"chunked upload (fallback)", 200 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := pattern(tt.size)
			var body io.Reader = bytes.NewReader(want)
			if tt.chunked {
				body = io.MultiReader(body) // unknown length
			}
			resp, err := c.Post(url+"/echo", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("echo of %d bytes: status %d, %d bytes back, %v", tt.size, resp.StatusCode, len(got), err)
			}
			if r, ok := backend.LastRequest(); !ok || r.Method != "POST" {
				t.Fatalf("backend saw %+v", r)
			}
		})
	}
}

// TestH1HTTPS checks the TLS side: the server name taken from the address
// (the certificate is verified for it), ALPN http/1.1, and connections
// reused.
func TestH1HTTPS(t *testing.T) {
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

	p := &ReverseProxy{Scheme: "https", TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	h1 := p.newTransport(nil, plainDial).(*h1Transport)
	t.Cleanup(h1.CloseIdleConnections)
	addr := strings.TrimPrefix(srv.URL, "https://")
	for i, method := range []string{"GET", "POST", "GET", "DELETE"} {
		code, body, err := h1Get(t, h1, method, "https://"+addr+"/", nil)
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
	if p.TLSClientConfig.ServerName != "" || p.TLSClientConfig.NextProtos != nil {
		t.Fatal("the configured tls.Config was modified")
	}
}

// TestH1ConnectErrorKept checks that the Pool's dial error reaches
// poolTransport as is, so that it retries on another server.
func TestH1ConnectErrorKept(t *testing.T) {
	p := &ReverseProxy{}
	want := &ConnectError{Server: "x", Err: errors.New("refused")}
	rt := p.newTransport(nil, func(context.Context, string, string) (net.Conn, error) { return nil, want })
	_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://127.0.0.1:1/", nil).WithContext(context.Background()))
	var ce *ConnectError
	if !errors.As(err, &ce) || ce != want {
		t.Fatalf("error %v, want the ConnectError", err)
	}
}

// TestH1IdleTimeout checks that an idle connection past the idle timeout
// is closed instead of used, by the take and by the sweep.
func TestH1IdleTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := startRaw(t, serveHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	h1 := newTestH1(t, 0)
	h := h1.host(h1Key{addr: srv.addr})
	age := func() {
		h.mu.Lock()
		for _, pc := range h.idle {
			pc.idleAt = pc.idleAt.Add(-h1IdleTimeout)
		}
		h.mu.Unlock()
	}
	if _, _, err := h1Get(t, h1, "GET", "http://"+srv.addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	age()
	if _, _, err := h1Get(t, h1, "GET", "http://"+srv.addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 2 {
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
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.open) == 0
	})
}

// TestH1BodyClose checks that closing a body early closes the connection
// (no draining), that Close is idempotent, and that it interrupts a Read
// blocked in another goroutine.
func TestH1BodyClose(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	h1 := newTestH1(t, 0)
	req, _ := http.NewRequest("GET", "http://"+srv.addr+"/stall-body", nil)
	resp, err := h1.RoundTrip(req)
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
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	for range 3 {
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-readErr; err == nil {
		t.Fatal("blocked Read returned no error after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if _, err := resp.Body.Read(buf); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Fatalf("Read after Close: %v", err)
	}
	h := h1.host(h1Key{addr: srv.addr})
	h.mu.Lock()
	idle := len(h.idle)
	h.mu.Unlock()
	if idle != 0 {
		t.Fatal("a connection closed early went back to the idle stack")
	}
}

// TestH1NoGoroutines checks that a round trip on the engine's fast path
// starts no goroutine.
func TestH1NoGoroutines(t *testing.T) {
	srv := startRaw(t, serveHTTP(func(w io.Writer, r *http.Request, n int) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}))
	h1 := newTestH1(t, 0)
	if _, _, err := h1Get(t, h1, "GET", "http://"+srv.addr+"/", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.addr+"/", nil)
	before := runtime.NumGoroutine()
	resp, err := h1.RoundTrip(req)
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

// BenchmarkH1RoundTrip measures round trips of the engine alone, and of
// net/http's Transport configured as its fallback, to a loopback server:
// GET (replayed if a reused connection fails) and DELETE (not replayed, so
// each reused connection is first peeked at).
func BenchmarkH1RoundTrip(b *testing.B) {
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
	p := &ReverseProxy{}
	h1 := p.newTransport(nil, plainDial).(*h1Transport)
	for _, rt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"engine", h1}, {"net-http", h1.fallback}} {
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
	h1.CloseIdleConnections()
}

// TestH1ForwardsEarlyHints checks that 1xx responses reach the client
// through httputil.ReverseProxy, as with net/http's Transport.
func TestH1ForwardsEarlyHints(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.addr}}); err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, &ReverseProxy{Pool: pool})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/103", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final" {
		t.Fatalf("final response %d %q", resp.StatusCode, b)
	}
	if len(got) == 0 || got[0] != "103 </s.css>; rel=preload" {
		t.Fatalf("1xx responses seen by the client: %q", got)
	}
}
