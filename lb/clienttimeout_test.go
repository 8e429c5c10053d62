package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// bodyResult is what the backend of these tests saw of a request body.
type bodyResult struct {
	n   int64
	err error
}

// uploadBackend is a real HTTP server that reads each request body to its
// end and answers with its length, reporting what it read on bodies; GET
// /big?n=N answers N bytes. It records when its connections close.
type uploadBackend struct {
	addr   string
	bodies chan bodyResult
	mu     sync.Mutex
	open   map[net.Conn]bool
}

func startUploadBackend(t *testing.T) *uploadBackend {
	t.Helper()
	b := &uploadBackend{bodies: make(chan bodyResult, 16), open: make(map[net.Conn]bool)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	b.addr = ln.Addr().String()
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				n, _ := strconv.Atoi(r.URL.Query().Get("n"))
				w.Header().Set("Content-Length", strconv.Itoa(n))
				chunk := bytes.Repeat([]byte("x"), 32<<10)
				for n > 0 {
					m := min(n, len(chunk))
					if _, err := w.Write(chunk[:m]); err != nil {
						return
					}
					n -= m
				}
				return
			}
			n, err := io.Copy(io.Discard, r.Body)
			b.bodies <- bodyResult{n, err}
			if err == nil {
				fmt.Fprintf(w, "%d", n)
			}
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			b.mu.Lock()
			defer b.mu.Unlock()
			switch s {
			case http.StateNew:
				b.open[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(b.open, c)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *uploadBackend) openConns() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.open)
}

// rawResponse reads one response from br and returns its status, whether
// it closes the connection (Connection: close) and its body.
func rawResponse(t *testing.T, br *bufio.Reader) (int, bool, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Close, body
}

// startGuarded serves proxy over a real http.Server, as ReverseProxy's
// documentation recommends, and returns its address.
func startGuarded(t *testing.T, proxy *lb.ReverseProxy) string {
	t.Helper()
	url, _ := startL7(t, proxy, time.Second)
	return strings.TrimPrefix(url, "http://")
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	must(t, err)
	c.SetDeadline(time.Now().Add(15 * time.Second)) // a failing test fails, not hangs
	t.Cleanup(func() { c.Close() })
	return c
}

// dribble writes body to c one byte every gap until it is all sent, a
// write fails or stop is closed, and reports how many bytes went out.
func dribble(c net.Conn, body []byte, gap time.Duration, stop <-chan struct{}) <-chan int {
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for n < len(body) {
			if _, err := c.Write(body[n : n+1]); err != nil {
				return
			}
			n++
			select {
			case <-time.After(gap):
			case <-stop:
				return
			}
		}
	}()
	return sent
}

// TestClientTimeoutSlowBody: a client sending its body far below the
// minimum rate is answered 408 with Connection: close and disconnected
// once the grace is spent, and the request to the server is aborted, its
// connection closed; the abort is the client's. Bodies the HTTP/1.1
// engine writes itself (small) and those streamed by http.Transport
// (large) both.
func TestClientTimeoutSlowBody(t *testing.T) { forEngines(t, testClientTimeoutSlowBody) }

func testClientTimeoutSlowBody(t *testing.T) {
	for _, size := range []int{4096, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			testutil.CheckLeaks(t)
			backend := startUploadBackend(t)
			obs := &outcomes{}
			pool := &lb.Pool{Name: "web", Balancer: obs}
			must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
			logs := newCollector()
			const grace = 300 * time.Millisecond
			proxy := &lb.ReverseProxy{Name: "fe", Pool: pool, AccessLog: logs,
				MinBodyRate: 1000, MinBodyRateGrace: grace, ClientTimeout: 5 * time.Second}
			addr := startGuarded(t, proxy)

			c := dialRaw(t, addr)
			// The first bytes of the body come with the headers, so the
			// request reaches the server before the client slows down.
			head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: %d\r\n\r\n", size)
			start := time.Now()
			if _, err := io.WriteString(c, head+"ab"); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			sent := dribble(c, bytes.Repeat([]byte("z"), 100), 50*time.Millisecond, stop)
			code, closing, _ := rawResponse(t, bufio.NewReader(c))
			cut := time.Since(start)
			close(stop)
			if code != http.StatusRequestTimeout || !closing {
				t.Errorf("response %d, Connection: close %v; want 408 and close", code, closing)
			}
			if cut < grace || cut > grace+2*time.Second {
				t.Errorf("cut after %v; want after the grace of %v, within 2 s more", cut, grace)
			}
			if n := <-sent; n >= 100 {
				t.Errorf("the client sent all of its %d bytes", n)
			}
			// The proxy closes the client's connection.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("client connection still open: %v", err)
			}
			if size > 64<<10 {
				// The server saw its request start and break off.
				if r := <-backend.bodies; r.err == nil {
					t.Errorf("server read a whole body of %d bytes", r.n)
				}
			}
			testutil.Eventually(t, "the server connection closed", func() bool { return backend.openConns() == 0 })

			r := logs.Next(t)
			if r.Termination != "cD" || r.Status != http.StatusRequestTimeout || r.Server != "a" {
				t.Errorf("record: termination %q, status %d, server %q; want cD, 408, a", r.Termination, r.Status, r.Server)
			}
			st := proxy.Stats()
			if st.ClientAborts != 1 {
				t.Errorf("frontend client aborts = %d, want 1", st.ClientAborts)
			}
			if seen, failed := obs.counts(); seen != 1 || failed != 0 {
				t.Errorf("observed %d outcomes, %d failed; want the one, not failed", seen, failed)
			}
			ps := pool.Stats()
			if len(ps.Servers) != 1 || ps.Servers[0].ClientAborts != 1 || ps.Servers[0].ResponseErrors != 0 {
				t.Errorf("server stats %+v; want one client abort and no response error", ps.Servers)
			}
		})
	}
}

// outcomes is a Balancer picking the first server that counts the outcomes
// it observes, and those that count against the server.
type outcomes struct {
	mu           sync.Mutex
	seen, failed int
}

func (o *outcomes) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) { return s.Servers[0], nil }

func (o *outcomes) Observe(_ *lb.Server, out lb.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen++
	if out.Failed() {
		o.failed++
	}
}

func (o *outcomes) counts() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen, o.failed
}

// TestClientTimeoutStalledBody: a client that stops sending its body is cut
// after ClientTimeout, well before any rate bound would matter, also when
// the proxy's ResponseWriter is wrapped by a middleware that Unwraps.
func TestClientTimeoutStalledBody(t *testing.T) { forEngines(t, testClientTimeoutStalledBody) }

func testClientTimeoutStalledBody(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := startUploadBackend(t)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	const timeout = 300 * time.Millisecond
	proxy := &lb.ReverseProxy{Pool: pool, ClientTimeout: timeout, MinBodyRate: -1}
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrapped), func(t *testing.T) {
			var h http.Handler = proxy
			if wrapped {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					proxy.ServeHTTP(&unwrapper{w}, r)
				})
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			c := dialRaw(t, ln.Addr().String())
			start := time.Now()
			io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 10\r\n\r\nabc")
			code, _, _ := rawResponse(t, bufio.NewReader(c))
			if cut := time.Since(start); code != http.StatusRequestTimeout || cut < timeout || cut > timeout+2*time.Second {
				t.Errorf("got %d after %v; want 408 after %v, within 2 s more", code, cut, timeout)
			}
		})
	}
}

// unwrapper is a middleware's ResponseWriter.
type unwrapper struct{ http.ResponseWriter }

func (u *unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// TestClientTimeoutFastUpload: an upload of several MiB from a client that
// paces itself above the minimum rate goes through whole.
func TestClientTimeoutFastUpload(t *testing.T) { forEngines(t, testClientTimeoutFastUpload) }

func testClientTimeoutFastUpload(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := startUploadBackend(t)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	proxy := &lb.ReverseProxy{Pool: pool, MinBodyRate: 256 << 10, MinBodyRateGrace: 200 * time.Millisecond,
		ClientTimeout: 2 * time.Second}
	addr := startGuarded(t, proxy)

	const size = 4 << 20
	c := dialRaw(t, addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: %d\r\n\r\n", size)
	chunk := bytes.Repeat([]byte("u"), 16<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("after %d bytes: %v", sent, err)
		}
		time.Sleep(2 * time.Millisecond) // about 8 MB/s at most: above the rate, not a flood
	}
	code, _, body := rawResponse(t, bufio.NewReader(c))
	if code != http.StatusOK || string(body) != strconv.Itoa(size) {
		t.Errorf("got %d %q; want 200 %d", code, body, size)
	}
	if r := <-backend.bodies; r.err != nil || r.n != size {
		t.Errorf("server read %d bytes, %v", r.n, r.err)
	}
}

// TestClientTimeoutSlowReader: a client that stops reading a large
// response is cut after ClientTimeout without progress; one that keeps
// reading, slowly, gets all of it.
func TestClientTimeoutSlowReader(t *testing.T) { forEngines(t, testClientTimeoutSlowReader) }

func testClientTimeoutSlowReader(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := startUploadBackend(t)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	logs := newCollector()
	const timeout = time.Second // a loaded machine can pause a reader for a few hundred ms
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs, ClientTimeout: timeout}
	// A blocked write sees progress when the kernel wakes it, once about
	// a third of the socket's send buffer has drained: Linux grows that
	// buffer to megabytes on loopback, more than a slow reader drains in
	// a test's short timeout. A send buffer of a slow link's size keeps
	// the wake-ups as frequent as they are there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			c.(*net.TCPConn).SetWriteBuffer(64 << 10)
			return ctx
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	t.Run("stalled", func(t *testing.T) {
		const size = 8 << 20 // more than the socket buffers hold
		c := dialRaw(t, addr)
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		start := time.Now()
		fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: lb.test\r\n\r\n", size)
		r := logs.Next(t) // the proxy gave up on the client
		if r.Termination != "cD" {
			t.Errorf("termination %q, want cD", r.Termination)
		}
		if d := time.Since(start); d < timeout {
			t.Errorf("cut after %v, before the client timeout %v", d, timeout)
		}
		// The proxy closed its side; what its kernel still holds trickles
		// in, and never all of the response.
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := io.Copy(io.Discard, c)
		if n >= size {
			t.Errorf("the client got %d bytes, all of them (%v)", n, err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		const size = 8 << 20 // longer to read than the timeout, and more than the socket buffers hold
		c := dialRaw(t, addr)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n", size)
		buf := make([]byte, 64<<10)
		var got, paced int64
		for i := 0; i < 100000; i++ {
			n, err := c.Read(buf)
			got += int64(n)
			if err != nil {
				break
			}
			if got-paced >= 128<<10 {
				// A slow reader, about 4 MB/s at most, never idle for the
				// timeout.
				paced = got
				time.Sleep(30 * time.Millisecond)
			}
		}
		if want := int64(size); got < want {
			t.Errorf("the slow reader got %d bytes, want over %d", got, want)
		}
		if r := logs.Next(t); r.Termination != "--" || r.BytesOut != size {
			t.Errorf("record: termination %q, %d bytes out", r.Termination, r.BytesOut)
		}
	})
}

// TestClientTimeoutBufferedResponse: a response small enough to sit whole in
// the kernel's socket buffers leaves the proxy at once; a client that never
// reads it must not hold the connection for the http.Server's IdleTimeout:
// with the proxy's ConnState hook, the kernel aborts it after ClientTimeout
// (TCP_USER_TIMEOUT, Linux).
func TestClientTimeoutBufferedResponse(t *testing.T) {
	forEngines(t, testClientTimeoutBufferedResponse)
}

func testClientTimeoutBufferedResponse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	testutil.CheckLeaks(t)
	backend := startUploadBackend(t)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	logs := newCollector()
	const timeout = time.Second
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs, ClientTimeout: timeout}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Hour,
		ConnState: proxy.ConnState}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	must(t, err)
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10) // a window the response does not fit
	const size = 256 << 10
	start := time.Now()
	fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: lb.test\r\n\r\n", size)
	if r := logs.Next(t); r.Termination != "--" {
		t.Fatalf("termination %q: the response did not leave the proxy whole", r.Termination)
	}
	// The client never reads: the proxy's connection closes after about
	// ClientTimeout, long before IdleTimeout.
	testutil.Eventually(t, "the unread connection to close", func() bool { return proxy.Stats().ConnCur == 0 })
	if d := time.Since(start); d < timeout {
		t.Errorf("closed after %v, before the client timeout %v", d, timeout)
	}
}

// TestClientTimeoutUpgrade: an upgraded connection idle for longer than
// ClientTimeout stays open, and is closed by the Pool's TunnelTimeout.
func TestClientTimeoutUpgrade(t *testing.T) { forEngines(t, testClientTimeoutUpgrade) }

func testClientTimeoutUpgrade(t *testing.T) {
	testutil.CheckLeaks(t)
	ws := testutil.HTTPBackend(t, "ws")
	const tunnel = time.Second
	pool := &lb.Pool{Name: "web", TunnelTimeout: tunnel}
	must(t, pool.Update([]lb.Server{{Name: "ws", Addr: ws.Addr}}))
	const timeout = 100 * time.Millisecond
	proxy := &lb.ReverseProxy{Pool: pool, ClientTimeout: timeout}
	addr := startGuarded(t, proxy)

	c := dialRaw(t, addr)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: lb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i := range 2 {
		time.Sleep(3 * timeout) // idle past the client timeout
		msg := fmt.Sprintf("ping %d", i)
		io.WriteString(c, msg)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo %d after idling: %q, %v", i, got, err)
		}
	}
	idle := time.Now()
	c.SetReadDeadline(time.Now().Add(tunnel + 5*time.Second))
	_, err = br.ReadByte()
	if d := time.Since(idle); err == nil || d < tunnel-50*time.Millisecond || d > tunnel+3*time.Second {
		t.Errorf("tunnel ended after %v idle with %v; want the tunnel timeout %v", d, err, tunnel)
	}
	testutil.Eventually(t, "the stream untracked", func() bool { return proxy.ActiveStreams() == 0 })
}

// TestClientTimeoutGRPC: gRPC request bodies have no minimum rate, and
// their waits are bounded by the tunnel timeout, not ClientTimeout; the
// same body with another content type is cut.
func TestClientTimeoutGRPC(t *testing.T) { forEngines(t, testClientTimeoutGRPC) }

func testClientTimeoutGRPC(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := startUploadBackend(t)
	pool := &lb.Pool{Name: "web", TunnelTimeout: 5 * time.Second}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	const timeout = 150 * time.Millisecond
	proxy := &lb.ReverseProxy{Pool: pool, ClientTimeout: timeout, MinBodyRate: 1 << 20,
		MinBodyRateGrace: 50 * time.Millisecond}
	addr := startGuarded(t, proxy)

	for _, tc := range []struct {
		ctype string
		want  int
	}{{"application/grpc+proto", http.StatusOK}, {"application/octet-stream", http.StatusRequestTimeout}} {
		t.Run(tc.ctype, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			body := []byte("12345")
			fmt.Fprintf(c, "POST /svc/Method HTTP/1.1\r\nHost: lb.test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				tc.ctype, len(body))
			stop := make(chan struct{})
			defer close(stop)
			dribble(c, body, 2*timeout, stop) // gaps past ClientTimeout, far below the rate
			code, _, got := rawResponse(t, bufio.NewReader(c))
			if code != tc.want {
				t.Errorf("status %d, want %d (%q)", code, tc.want, got)
			}
			if tc.want == http.StatusOK && string(got) != strconv.Itoa(len(body)) {
				t.Errorf("server read %q bytes, want %d", got, len(body))
			}
		})
	}
}

// deadlineWriter is a DiscardWriter that accepts deadlines, as
// http.Server's ResponseWriter does, and counts them.
type deadlineWriter struct {
	testutil.DiscardWriter
	reads, writes int
}

func (w *deadlineWriter) SetReadDeadline(time.Time) error  { w.reads++; return nil }
func (w *deadlineWriter) SetWriteDeadline(time.Time) error { w.writes++; return nil }

// TestClientTimeoutAllocs: guarding a request against slow clients
// allocates nothing more per request without a body, and sets one write
// deadline for a quick response.
func TestClientTimeoutAllocs(t *testing.T) {
	skipUnderRace(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	allocs := func(proxy *lb.ReverseProxy, w *deadlineWriter) float64 {
		w.H = http.Header{}
		return testing.AllocsPerRun(200, func() {
			r := httptest.NewRequest("GET", "http://lb.test/", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			clear(w.H)
			proxy.ServeHTTP(w, r)
		})
	}
	var offW, onW deadlineWriter
	off := allocs(&lb.ReverseProxy{Pool: pool, ClientTimeout: -1, MinBodyRate: -1}, &offW)
	on := allocs(&lb.ReverseProxy{Pool: pool}, &onW)
	t.Logf("allocations per request: %.0f unguarded, %.0f guarded; %d write deadlines for %d requests",
		off, on, onW.writes, 201)
	if on > off {
		t.Errorf("guarding adds %.0f allocations per request", on-off)
	}
	if offW.writes != 0 || onW.reads != 0 || onW.writes == 0 || onW.writes > 2*201 {
		t.Errorf("deadlines set: unguarded %d, guarded %d writes and %d reads", offW.writes, onW.writes, onW.reads)
	}
}

// BenchmarkClientGuard measures a GET through the proxy with a
// ResponseWriter that takes deadlines, as http.Server's does, with the
// client timeouts off and on (the defaults).
func BenchmarkClientGuard(b *testing.B) {
	addr := testutil.FastBackend(b)
	pool := &lb.Pool{}
	if err := pool.Update([]lb.Server{{Addr: addr}}); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		proxy *lb.ReverseProxy
	}{
		{"off", &lb.ReverseProxy{Pool: pool, ClientTimeout: -1, MinBodyRate: -1}},
		{"on", &lb.ReverseProxy{Pool: pool}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &deadlineWriter{DiscardWriter: testutil.DiscardWriter{H: http.Header{}}}
			for b.Loop() {
				r := httptest.NewRequest("GET", "http://lb.test/", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				clear(w.H)
				bc.proxy.ServeHTTP(w, r)
			}
		})
	}
}
