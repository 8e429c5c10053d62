package lb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// startL7 serves proxy on a loopback http.Server through lb.Serve and
// returns the base URL and a stop function that cancels Serve and waits.
func startL7(t *testing.T, proxy *lb.ReverseProxy, grace time.Duration) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, frontendOf(t, srv), ln, grace, proxy) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

func client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	must(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(body), resp.Header
}

func TestReverseProxyBalancesAndRebuildsForwardedHeaders(t *testing.T) {
	testutil.CheckLeaks(t)
	var backends []*testutil.Backend
	var list []lb.Server
	for _, n := range []string{"a", "b", "c"} {
		b := testutil.HTTPBackend(t, n)
		backends = append(backends, b)
		list = append(list, lb.Server{Name: n, Addr: b.Addr})
	}
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update(list))
	proxy := &lb.ReverseProxy{Pool: pool}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	seen := map[string]int{}
	for range 30 {
		code, body, hdr := get(t, c, url+"/hello?x=1",
			"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https",
			"X-Forwarded-Host", "evil.example", "X-Forwarded-Port", "1", "Forwarded", "for=6.6.6.6")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		seen[strings.TrimSpace(body)]++
		if hdr.Get("X-Backend") == "" {
			t.Fatal("backend header not passed back")
		}
	}
	if seen["a"] != 10 || seen["b"] != 10 || seen["c"] != 10 {
		t.Fatalf("spread = %v, want 10 each", seen)
	}
	h := backends[0].LastHeader()
	port := url[strings.LastIndex(url, ":")+1:]
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  strings.TrimPrefix(url, "http://"),
		"X-Forwarded-Port":  port,
		"Forwarded":         "",
	}
	for k, v := range want {
		if got := strings.Join(h.Values(k), ","); got != v {
			t.Errorf("backend saw %s = %q, want %q", k, got, v)
		}
	}
}

func TestReverseProxyRetriesWithBody(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "a", Addr: a.Addr}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	for i := range 6 {
		body := strings.Repeat(fmt.Sprint(i), 100000)
		resp, err := c.Post(url+"/echo", "text/plain", strings.NewReader(body))
		must(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != body || err != nil {
			t.Fatalf("POST %d through a refusing server: status %d, %d bytes back, %v", i, resp.StatusCode, len(got), err)
		}
	}
	if pool.Status()[0].Failures == 0 {
		t.Fatal("the refusing server was never tried")
	}
}

// TestReverseProxyLargeBodiesUnderLoad sends 100 kB POSTs (beyond the
// HTTP/1.1 engine, so through the fallback http.Transport) from several
// clients at once, through a pool whose first server refuses connections,
// while busy goroutines keep every CPU loaded: each response must come back
// whole. The server answers as soon as it has the whole body, and sends the
// second half of its answer later; the writes to it return late, as those
// of a writing goroutine that the load descheduled: the proxy is then
// copying the response while its transport still finishes the request.
func TestReverseProxyLargeBodiesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads every CPU for seconds")
	}
	testutil.CheckLeaks(t)
	backend := &http.Server{Handler: http.HandlerFunc(echoInTwoParts)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	pool := &lb.Pool{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return lateWriter{c}, nil
	}}
	must(t, pool.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "a", Addr: ln.Addr().String()}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool}, time.Second)

	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		busy.Add(1)
		go spin(stop, &busy)
	}
	defer busy.Wait()
	defer close(stop)

	const clients, requests = 8, 10
	deadline := time.Now().Add(30 * time.Second)
	body := strings.Repeat("0123456789", 10000)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			defer c.CloseIdleConnections()
			for i := 0; i < requests && time.Now().Before(deadline); i++ {
				resp, err := c.Post(url+"/echo", "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- fmt.Errorf("client %d, POST %d: %w", g, i, err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(got) != body || err != nil {
					errs <- fmt.Errorf("client %d, POST %d: status %d, %d bytes back, %v", g, i, resp.StatusCode, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if pool.Status()[0].Failures == 0 {
		t.Fatal("the refusing server was never tried")
	}
}

// echoInTwoParts answers the request body: the first half at once, the
// second 20 ms later.
func echoInTwoParts(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	half := len(data) / 2
	w.Write(data[:half])
	http.NewResponseController(w).Flush()
	time.Sleep(20 * time.Millisecond)
	w.Write(data[half:])
}

// lateWriter is a connection whose writes return 5 ms after the bytes were
// sent.
type lateWriter struct{ net.Conn }

func (c lateWriter) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	time.Sleep(5 * time.Millisecond)
	return n, err
}

// spin keeps a CPU busy until stop is closed.
func spin(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
	}
}

func TestReverseProxyErrors(t *testing.T) {
	testutil.CheckLeaks(t)
	slow := testutil.HTTPBackend(t, "slow")
	tests := []struct {
		name     string
		servers  []lb.Server
		down     bool
		fallback http.Handler
		path     string
		want     int
		wantBody string
	}{
		{name: "no server", servers: servers("127.0.0.1:1"), down: true, path: "/", want: 503},
		{name: "fallback", servers: servers("127.0.0.1:1"), down: true, path: "/",
			fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
				io.WriteString(w, "maintenance page")
			}), want: 200, wantBody: "maintenance page"},
		{name: "all refuse", servers: servers(testutil.ClosedAddr(t)), path: "/", want: 502},
		{name: "timeout", servers: servers(slow.Addr), path: "/slow?ms=2000", want: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := &lb.Pool{}
			must(t, pool.Update(tt.servers))
			if tt.down {
				pool.SetState(tt.servers[0].Addr, lb.StateDown, "test")
			}
			proxy := &lb.ReverseProxy{Pool: pool, Fallback: tt.fallback, ServerTimeout: 200 * time.Millisecond}
			url, _ := startL7(t, proxy, time.Second)
			c := client()
			defer c.CloseIdleConnections()
			code, body, _ := get(t, c, url+tt.path)
			if code != tt.want {
				t.Fatalf("status %d, want %d (%s)", code, tt.want, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Fatalf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestStatusForError(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{lb.ErrNoServer, 503},
		{fmt.Errorf("x: %w", lb.ErrQueueTimeout), 503},
		{context.DeadlineExceeded, 504},
		{&lb.ConnectError{Server: "a", Err: context.DeadlineExceeded}, 504},
		{errors.New("connection reset"), 502},
	}
	for _, tt := range tests {
		if got := lb.StatusForError(tt.err); got != tt.want {
			t.Errorf("StatusForError(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestReverseProxyRoute(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	pa, pb := &lb.Pool{Name: "a"}, &lb.Pool{Name: "b"}
	must(t, pa.Update(servers(a.Addr)))
	must(t, pb.Update(servers(b.Addr)))
	proxy := &lb.ReverseProxy{Pool: pa, Route: func(r *http.Request) *lb.Pool {
		if strings.HasPrefix(r.URL.Path, "/b/") {
			return pb
		}
		return nil
	}}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	for path, want := range map[string]string{"/x": "a", "/b/y": "b", "/bb": "a"} {
		if _, body, _ := get(t, c, url+path); strings.TrimSpace(body) != want {
			t.Errorf("%s went to %q, want %q", path, body, want)
		}
	}
}

func TestHTTPShutdownLetsInflightFinish(t *testing.T) {
	testutil.CheckLeaks(t)
	slow := testutil.HTTPBackend(t, "slow")
	pool := &lb.Pool{}
	must(t, pool.Update(servers(slow.Addr)))
	url, stop := startL7(t, &lb.ReverseProxy{Pool: pool}, 3*time.Second)
	c := client()
	defer c.CloseIdleConnections()
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get(url + "/slow?ms=400")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	testutil.Eventually(t, "the request in flight", func() bool { return pool.Status()[0].Active == 1 })
	stop()
	r := <-res
	if r.err != nil || r.code != 200 || strings.TrimSpace(r.body) != "slow" {
		t.Fatalf("in-flight request across shutdown: %d %q %v", r.code, r.body, r.err)
	}
}

// dialUpgrade opens a raw upgraded stream through the proxy.
func dialUpgrade(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := dial(t, strings.TrimPrefix(url, "http://"))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d", resp.StatusCode)
	}
	return c, br
}

func TestUpgradedStreamsTrackedForShutdown(t *testing.T) {
	testutil.CheckLeaks(t)
	ws := testutil.HTTPBackend(t, "ws")
	pool := &lb.Pool{}
	must(t, pool.Update(servers(ws.Addr)))

	t.Run("finishes within grace", func(t *testing.T) {
		proxy := &lb.ReverseProxy{Pool: pool}
		url, stop := startL7(t, proxy, 3*time.Second)
		c, br := dialUpgrade(t, url)
		defer c.Close()
		echoLine(t, c, br, "one")
		if proxy.ActiveStreams() != 1 || pool.Status()[0].Active != 1 {
			t.Fatalf("stream not tracked: %d streams, %d active", proxy.ActiveStreams(), pool.Status()[0].Active)
		}
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		addr := strings.TrimPrefix(url, "http://")
		testutil.Eventually(t, "the shutdown to close the listener", func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		echoLine(t, c, br, "two") // still open during shutdown
		select {
		case <-stopped:
			t.Fatal("shutdown did not wait for the upgraded stream")
		default:
		}
		c.Close()
		select {
		case <-stopped:
		case <-time.After(3 * time.Second):
			t.Fatal("shutdown did not end after the stream closed")
		}
		testutil.Eventually(t, "no active lease", func() bool { return pool.Status()[0].Active == 0 })
	})
	t.Run("closed at deadline", func(t *testing.T) {
		proxy := &lb.ReverseProxy{Pool: pool}
		url, stop := startL7(t, proxy, 200*time.Millisecond)
		c, br := dialUpgrade(t, url)
		defer c.Close()
		echoLine(t, c, br, "one")
		start := time.Now()
		stop()
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("shutdown took %v with a 200ms grace", d)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("upgraded stream still open after the deadline")
		}
		testutil.Eventually(t, "no stream and no lease", func() bool { return proxy.ActiveStreams() == 0 && pool.Status()[0].Active == 0 })
	})
}

func echoLine(t *testing.T, c net.Conn, br *bufio.Reader, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != s+"\n" {
		t.Fatalf("echo %q = %q, %v", s, line, err)
	}
}

func TestHandlerSwitch(t *testing.T) {
	var sw lb.HandlerSwitch
	rec := func() int {
		w := &statusRecorder{header: http.Header{}}
		sw.ServeHTTP(w, &http.Request{})
		return w.code
	}
	if rec() != 503 {
		t.Fatal("empty HandlerSwitch did not answer 503")
	}
	sw.Store(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	if rec() != 204 {
		t.Fatal("stored handler not used")
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(c int)           { r.code = c }

func TestClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80":          "127.0.0.1",
		"[::1]:80":              "::1",
		"[::ffff:10.0.0.1]:443": "10.0.0.1",
		"[2001:DB8::1]:1":       "2001:db8::1",
		"[fe80::1%eth0]:1":      "fe80::1%eth0",
		"@":                     "",
		"10.0.0.1":              "",
		"010.0.0.1:1":           "",
	} {
		if got := lb.ClientIPForTest(in); got != want {
			t.Errorf("clientIP(%q) = %q, want %q", in, got, want)
		}
	}
}
