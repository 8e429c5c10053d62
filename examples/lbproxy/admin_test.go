package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/statuspage"
)

// adminRun is an lbproxy started by startAdminRun.
type adminRun struct {
	addr, admin string // the frontend's address, the admin base URL
	stop        func() // cancels run's context (SIGTERM)
	done        chan error
}

// startAdminRun runs lbproxy with cfg and admin endpoints on free loopback
// ports. The test may stop it early with stop; cleanup does otherwise and
// checks that run returned nil.
func startAdminRun(t *testing.T, cfg *config) *adminRun {
	t.Helper()
	cfg.listen, cfg.admin = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.grace == 0 {
		cfg.grace = time.Second
	}
	if cfg.checkInterval == 0 {
		cfg.checkInterval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	r := &adminRun{stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, cfg, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "admin endpoints on "); ok {
			r.admin = strings.TrimSuffix(a, "/")
		}
		if _, addr, ok := strings.Cut(line, " on "); ok && strings.HasPrefix(line, "lbproxy:") {
			r.addr = addr
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				select {
				case err := <-r.done:
					if err != nil {
						t.Error(err)
					}
				case <-time.After(10 * time.Second):
					t.Error("lbproxy did not stop")
				}
			})
			if r.admin == "" {
				t.Fatal("lbproxy did not name its admin address")
			}
			return r
		}
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-r.done)
	return nil
}

// adminGet requests url with the bearer token (none if empty) and returns
// the status and body.
func adminGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitHealth polls /healthz until it answers code with a body containing
// want, failing the test after 5 seconds.
func waitHealth(t *testing.T, r *adminRun, code int, want string) {
	t.Helper()
	var got int
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, body = adminGet(t, r.admin+"/healthz", ""); got == code && strings.Contains(body, want) {
			return
		}
	}
	t.Fatalf("/healthz = %d %q, want %d with %q", got, body, code, want)
}

// TestAdminHealthzServing: /healthz answers 200 while lbproxy serves, in
// both layers, with the self-checks running many times over (at L4 with a
// session open, so that its event loop runs and is checked).
func TestAdminHealthzServing(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, mode := range []string{"http", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode = mode
			if mode == "tcp" {
				cfg.backends = testutil.EchoServer(t).Addr
			} else {
				cfg.backends = testutil.HTTPBackend(t, "a").Addr
			}
			r := startAdminRun(t, cfg)
			if mode == "tcp" {
				conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 2)
				if _, err := io.WriteString(conn, "hi"); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hi" {
					t.Fatalf("echo = %q, %v", buf, err)
				}
			}
			time.Sleep(5 * cfg.checkInterval)
			if code, body := adminGet(t, r.admin+"/healthz", ""); code != http.StatusOK || body != "ok\n" {
				t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
			}
		})
	}
}

// TestAdminHealthzDraining: once lbproxy stops accepting (SIGTERM), and
// while a long request holds the drain, /healthz answers 503 "draining";
// the admin server is the last to stop.
func TestAdminHealthzDraining(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	cfg := defaultConfig()
	cfg.backends, cfg.grace = b.Addr, 10*time.Second
	r := startAdminRun(t, cfg)

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	slow := make(chan error, 1)
	wg.Go(func() {
		resp, err := c.Get("http://" + r.addr + "/slow?ms=1500")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		slow <- err
	})
	for deadline := time.Now().Add(5 * time.Second); b.Requests() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long request did not reach the server")
		}
	}
	r.stop()
	if code, body := adminGet(t, r.admin+"/healthz", ""); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Fatalf("/healthz while draining = %d %q, want 503 draining", code, body)
	}
	select {
	case <-r.done:
		t.Fatal("lbproxy returned before the long request ended")
	default:
	}
	if err := <-slow; err != nil {
		t.Fatalf("the long request did not finish in the drain: %v", err)
	}
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("lbproxy did not stop after the drain")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(r.admin, "http://"), time.Second); err == nil {
		t.Error("the admin server still accepts after lbproxy stopped")
	}
}

// stallListener is a listener that, while stalled, holds the connection
// it accepts instead of returning it: a layer of the accept path stuck on
// a connection (as one waiting for a header that never comes), which stops
// the accept loop.
type stallListener struct {
	net.Listener
	mu      sync.Mutex
	stalled bool
	resume  chan struct{} // closed when the stall ends
	closed  chan struct{}
	once    sync.Once
}

func (l *stallListener) setStalled(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on && !l.stalled {
		l.resume = make(chan struct{})
	} else if !on && l.stalled {
		close(l.resume)
	}
	l.stalled = on
}

func (l *stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	l.mu.Lock()
	stalled, resume := l.stalled, l.resume
	l.mu.Unlock()
	if stalled {
		select {
		case <-resume:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	return c, nil
}

func (l *stallListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestAdminHealthzAcceptStuck: when the accept path is stuck on a client's
// connection, /healthz answers 503 naming the accept check within a few
// check intervals, and 200 again once it accepts; the check's connections
// never reach the frontend, even those accepted late.
func TestAdminHealthzAcceptStuck(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, mode := range []string{"http", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode = mode
			if mode == "tcp" {
				cfg.backends = testutil.EchoServer(t).Addr
			} else {
				cfg.backends = testutil.HTTPBackend(t, "a").Addr
			}
			sl := &stallListener{closed: make(chan struct{})}
			cfg.wrapListener = func(ln net.Listener) net.Listener { sl.Listener = ln; return sl }
			r := startAdminRun(t, cfg)
			waitHealth(t, r, http.StatusOK, "ok")

			sl.setStalled(true)
			client, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			waitHealth(t, r, http.StatusServiceUnavailable, "accept: ")
			client.Close()
			sl.setStalled(false)
			waitHealth(t, r, http.StatusOK, "ok")

			code, body := adminGet(t, r.admin+"/stats", "")
			var doc statsDoc
			if err := json.Unmarshal([]byte(body), &doc); code != http.StatusOK || err != nil {
				t.Fatalf("/stats = %d %v", code, err)
			}
			if n := doc.Frontends[0].SessionsTotal; n != 1 {
				t.Errorf("the frontend counted %d connections, want the client's alone", n)
			}
		})
	}
}

// TestAdminStats: /stats decodes into the status page's Report, with the counts of the
// traffic sent (the self-check's connections excluded).
func TestAdminStats(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Run("http", func(t *testing.T) {
		a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
		cfg := defaultConfig()
		cfg.backends = a.Addr + "," + b.Addr
		r := startAdminRun(t, cfg)
		getN(t, r.addr, 6) // one connection, closed after
		doc := waitStats(t, r, func(d statsDoc) bool {
			return d.Backends[0].Requests == 6 && d.Frontends[0].SessionsCur == 0
		})
		fe, be := doc.Frontends[0], doc.Backends[0]
		if fe.Requests != 6 || fe.Responses.Class2xx != 6 || fe.SessionsTotal != 1 {
			t.Errorf("frontend %+v, want 6 requests, 6 2xx on 1 connection", fe)
		}
		if be.Name != "backend" || len(be.Servers) != 2 || be.Servers[0].Requests != 3 || be.Servers[1].Requests != 3 {
			t.Errorf("backend %+v, want 3 requests on each of 2 servers", be)
		}
		// The same counts through Prometheus and on the status page.
		code, exposition := adminGet(t, r.admin+"/metrics", "")
		for _, want := range []string{
			`lbkit_server_http_requests_total{proxy="backend",server="s1"} 3`,
			`lbkit_server_http_requests_total{proxy="backend",server="s2"} 3`,
			`lbkit_frontend_http_requests_total{proxy="frontend"} 6`,
		} {
			if code != http.StatusOK || !strings.Contains(exposition, want) {
				t.Errorf("/metrics (%d) lacks %s", code, want)
			}
		}
		if code, page := adminGet(t, r.admin+"/", ""); code != http.StatusOK || !strings.Contains(page, a.Addr) {
			t.Errorf("/ (%d) does not show server %s", code, a.Addr)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.mode, cfg.backends = "tcp", testutil.EchoServer(t).Addr
		r := startAdminRun(t, cfg)
		for range 3 {
			conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "hello")
			conn.(*net.TCPConn).CloseWrite()
			if got, err := io.ReadAll(conn); err != nil || string(got) != "hello" {
				t.Fatalf("echo = %q, %v", got, err)
			}
			conn.Close()
		}
		time.Sleep(3 * cfg.checkInterval) // checks run meanwhile
		doc := waitStats(t, r, func(d statsDoc) bool { return d.Backends[0].SessionsTotal == 3 && d.Backends[0].SessionsCur == 0 })
		if fe := doc.Frontends[0]; fe.SessionsTotal != 3 || fe.BytesIn != 15 || fe.BytesOut != 15 {
			t.Errorf("frontend %+v, want 3 connections of 5 bytes each way", fe)
		}
		if s := doc.Backends[0].Servers[0]; s.SessionsTotal != 3 || s.BytesIn != 15 {
			t.Errorf("server %+v, want 3 sessions and 15 bytes in", s)
		}
	})
}

// waitStats polls /stats until ok accepts the document, which it returns.
func waitStats(t *testing.T, r *adminRun, ok func(statsDoc) bool) statsDoc {
	t.Helper()
	var doc statsDoc
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		code, body := adminGet(t, r.admin+"/stats", "")
		if code != http.StatusOK {
			t.Fatalf("/stats = %d %q", code, body)
		}
		doc = statsDoc{}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("/stats: %v\n%s", err, body)
		}
		if len(doc.Backends) == 1 && ok(doc) {
			return doc
		}
	}
	t.Fatalf("/stats never reached the expected counts: %+v", doc)
	return doc
}

// TestAdminToken: with a token (from a file or the environment), /stats,
// /metrics and / refuse requests without it or with another one (401) and
// serve those with it; /healthz needs none.
func TestAdminToken(t *testing.T) {
	testutil.CheckLeaks(t)
	const secret = "s3cret-token"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"file", "env"} {
		t.Run(from, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.backends = testutil.HTTPBackend(t, "a").Addr
			if from == "file" {
				cfg.adminTokenFile = file
				t.Setenv(tokenEnv, "other")
			} else {
				t.Setenv(tokenEnv, secret)
			}
			r := startAdminRun(t, cfg)
			for _, tt := range []struct {
				path, token string
				want        int
			}{
				{"/healthz", "", http.StatusOK},
				{"/healthz", "wrong", http.StatusOK},
				{"/stats", "", http.StatusUnauthorized},
				{"/stats", "wrong", http.StatusUnauthorized},
				{"/stats", secret + "x", http.StatusUnauthorized},
				{"/stats", secret, http.StatusOK},
				{"/metrics", "", http.StatusUnauthorized},
				{"/metrics", secret, http.StatusOK},
				{"/", "", http.StatusUnauthorized},
				{"/", secret, http.StatusOK},
			} {
				if code, body := adminGet(t, r.admin+tt.path, tt.token); code != tt.want {
					t.Errorf("%s with token %q: %d %q, want %d", tt.path, tt.token, code, body, tt.want)
				}
			}
		})
	}
}

// TestAdminTokenRefused: an empty token file, or a token file without
// -admin, is refused before lbproxy serves.
func TestAdminTokenRefused(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := withFlags(t, "-backends", "127.0.0.1:1", "-admin", "127.0.0.1:0", "-admin-token-file", empty)
	if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token file: %v", err)
	}
	cfg = withFlags(t, "-backends", "127.0.0.1:1", "-admin-token-file", empty)
	if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), "-admin") {
		t.Errorf("token file without -admin: %v", err)
	}
	cfg = withFlags(t, "-backends", "127.0.0.1:1", "-admin", "127.0.0.1:bad")
	if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), "-admin") {
		t.Errorf("bad -admin address: %v", err)
	}
}

// TestAdminMux: the /metrics and / handlers given to adminMux are served
// (behind the token when set), and nil ones answer 404.
func TestAdminMux(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	for _, tt := range []struct {
		token, path, auth string
		metrics, status   http.Handler
		code              int
		body              string
	}{
		{"", "/healthz", "", nil, nil, 200, "health"},
		{"", "/stats", "", nil, nil, 200, "stats"},
		{"", "/metrics", "", nil, nil, 404, ""},
		{"", "/", "", nil, nil, 404, ""},
		{"", "/metrics", "", named("metrics"), named("status"), 200, "metrics"},
		{"", "/", "", named("metrics"), named("status"), 200, "status"},
		{"", "/servers", "", nil, named("status"), 200, "status"},
		{"t", "/metrics", "", named("metrics"), nil, 401, ""},
		{"t", "/metrics", "Bearer t", named("metrics"), nil, 200, "metrics"},
		{"t", "/", "Basic t", nil, named("status"), 401, ""},
		{"t", "/", "Bearer t", nil, named("status"), 200, "status"},
		{"t", "/healthz", "", nil, nil, 200, "health"},
	} {
		mux := adminMux(named("health"), named("stats"), tt.token, tt.metrics, tt.status)
		req := httptest.NewRequest("GET", tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != tt.code || (tt.body != "" && w.Body.String() != tt.body) {
			t.Errorf("token %q, %s (%q): %d %q, want %d %q", tt.token, tt.path, tt.auth, w.Code, w.Body, tt.code, tt.body)
		}
	}
}

// statsDoc is what /stats serves.
type statsDoc = statuspage.Report

// TestPrometheusScrapesLbproxy: a real Prometheus server scrapes lbproxy's
// /metrics, and its query API counts per server the requests sent through
// lbproxy.
func TestPrometheusScrapesLbproxy(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	cfg := defaultConfig()
	cfg.backends = a.Addr + "," + b.Addr
	r := startAdminRun(t, cfg)
	getN(t, r.addr, 10)
	prom := testutil.StartPrometheus(t, strings.TrimPrefix(r.admin, "http://"))
	prom.WaitQuery(t, `sum by (server) (lbkit_server_http_requests_total{job="lbkit",proxy="backend"})`,
		func(m map[string]float64) bool { return len(m) == 2 && m["s1"] == 5 && m["s2"] == 5 })
	prom.WaitQuery(t, `lbkit_frontend_http_responses_total{job="lbkit",proxy="frontend",code="2xx"}`,
		func(m map[string]float64) bool { return m[""] == 10 })
}
