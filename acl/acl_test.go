package acl_test

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
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func debugLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func pool(t testing.TB, name string, addrs ...string) *lb.Pool {
	t.Helper()
	p := &lb.Pool{Name: name}
	var servers []lb.Server
	for _, a := range addrs {
		servers = append(servers, lb.Server{Name: a, Addr: a})
	}
	must(t, p.Update(servers))
	return p
}

// serveHTTP serves h on a loopback http.Server and returns its address.
func serveHTTP(t *testing.T, h http.Handler, tlsConfig *tls.Config, connState func(net.Conn, http.ConnState)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConfig, ConnState: connState}
	done := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			done <- srv.ServeTLS(ln, "", "")
		} else {
			done <- srv.Serve(ln)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestFilterHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	be := testutil.HTTPBackend(t, "app")
	proxy := &lb.ReverseProxy{Pool: pool(t, "app", be.Addr)}
	t.Cleanup(func() { proxy.Close() })
	var logs syncBuffer
	rules, err := acl.Compile(
		acl.Rule{Name: "office", IPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Invert: true, Action: acl.Deny},
		acl.Rule{Name: "no-admin", PathPrefix: []string{"/admin"}, Action: acl.Deny},
		acl.Rule{Name: "old-site", Host: []string{"old.example"}, Action: acl.RedirectTo,
			Redirect: acl.Redirect{Location: "https://new.example{{path}}{{query}}", Code: http.StatusMovedPermanently}},
		acl.Rule{Name: "to-https", Header: "X-Plain", Action: acl.RedirectTo, Redirect: acl.Redirect{Scheme: "https"}},
	)
	must(t, err)
	rules.Logger = debugLogger(&logs)
	addr := serveHTTP(t, acl.FilterHTTP(rules, proxy), nil, nil)

	c := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	tests := []struct {
		name, host, target string
		header             http.Header
		status             int
		location, backend  string
	}{
		{"allowed", "www.example", "/", nil, 200, "", "app"},
		{"admin denied", "www.example", "/admin/users", nil, 403, "", ""},
		{"admin denied through dot-dot", "www.example", "/x/../admin", nil, 403, "", ""},
		{"old host redirected", "old.example", "/a%20b?x=1", nil, 301, "https://new.example/a%20b?x=1", ""},
		{"scheme redirect", "www.example:8080", "/p?q=1", http.Header{"X-Plain": {"1"}}, 302, "https://www.example/p?q=1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://"+addr+tt.target, nil)
			must(t, err)
			r.Host = tt.host
			for k, v := range tt.header {
				r.Header[k] = v
			}
			resp, err := c.Do(r)
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location || resp.Header.Get("X-Backend") != tt.backend {
				t.Fatalf("got %d Location=%q X-Backend=%q, want %d %q %q", resp.StatusCode,
					resp.Header.Get("Location"), resp.Header.Get("X-Backend"), tt.status, tt.location, tt.backend)
			}
		})
	}
	if be.Requests() != 1 {
		t.Errorf("backend saw %d requests, want 1", be.Requests())
	}
	if st := proxy.Stats(); st.Denied != 2 || st.Requests != 3 {
		t.Errorf("proxy stats: %d denied of %d requests, want 2 of 3", st.Denied, st.Requests)
	}

	// A Host that is no host name cannot be redirected: 400.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: bad..example\r\nX-Plain: 1\r\nConnection: close\r\n\r\n")
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "invalid host") {
		t.Fatalf("bad host: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}

	want := map[string]uint64{"office": 0, "no-admin": 2, "old-site": 1, "to-https": 2}
	for _, st := range rules.Stats() {
		if st.Hits != want[st.Name] {
			t.Errorf("rule %d %s: %d hits, want %d", st.Index, st.Name, st.Hits, want[st.Name])
		}
	}
	if got := rules.Rejected(); got != 5 {
		t.Errorf("Rejected = %d, want 5", got)
	}
	out := logs.String()
	for _, s := range []string{"acl: request denied", "rule=1 name=no-admin", "acl: request redirected", `location="https://new.example/a%20b?x=1"`, "acl: redirect with invalid host"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// readLine reads one line, or returns the read error's kind.
func readLine(c net.Conn) string {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func TestListenerDeniesBeforeServing(t *testing.T) {
	testutil.CheckLeaks(t)
	// Only 127.0.0.2 is in the "office"; everything else is closed at
	// accept, before the frontend sees it.
	var logs syncBuffer
	rules := acl.MustCompile(acl.Rule{Name: "office", IPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Invert: true, Action: acl.Deny})
	rules.Logger = debugLogger(&logs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var served atomic.Int64
	srv := &lb.TCPFrontend{Backend: lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		served.Add(1)
		io.WriteString(c, "hello "+c.Info.Remote.Addr().String()+"\n")
		c.Close()
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(acl.Listener(rules, ln)) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

	for _, tt := range []struct{ src, want string }{
		{"127.0.0.1", "error: EOF"},
		{"127.0.0.2", "hello 127.0.0.2"},
		{"127.0.0.3", "error: EOF"},
		{"127.0.0.2", "hello 127.0.0.2"},
	} {
		c := dialFrom(t, tt.src, ln.Addr().String())
		if got := readLine(c); got != tt.want && !(strings.HasPrefix(tt.want, "error") && strings.HasPrefix(got, "error")) {
			t.Errorf("from %s: %q, want %q", tt.src, got, tt.want)
		}
		c.Close()
	}
	if served.Load() != 2 {
		t.Errorf("frontend served %d connections, want 2", served.Load())
	}
	if st := rules.Stats()[0]; st.Hits != 2 {
		t.Errorf("office hits = %d, want 2", st.Hits)
	}
	if out := logs.String(); strings.Count(out, "acl: connection denied") != 2 || !strings.Contains(out, "name=office") {
		t.Errorf("log:\n%s", out)
	}
}

// offload terminates TLS in front of next and records the SNI in the
// connection's info, as a tlsmode adapter does.
func offload(config *tls.Config, next lb.Backend) lb.Backend {
	return lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		tc := tls.Server(c, config)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.Close()
			return
		}
		nc := c.WithConn(tc)
		st := tc.ConnectionState()
		nc.Info.SNI, nc.Info.TLS = st.ServerName, &st
		next.ServeConn(ctx, nc)
	})
}

func TestL4SNIRoutesAndFilter(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	a, b, def := testutil.NameServer(t, "a"), testutil.NameServer(t, "b"), testutil.NameServer(t, "default")
	mux := &lb.Mux{Default: pool(t, "default", def.Addr)}
	must(t, mux.Handle("a.example", pool(t, "a", a.Addr)))
	must(t, mux.Handle("*.b.example", pool(t, "b", b.Addr)))
	rules := acl.MustCompile(
		acl.Rule{Name: "internal", SNI: []string{"*.internal.example"}, Action: acl.Deny},
		acl.Rule{Name: "http-only", PathPrefix: []string{"/"}, Action: acl.Deny}, // skipped at L4
		acl.Rule{Name: "loopback", IPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Action: acl.Allow},
		acl.Rule{Name: "rest", Action: acl.Deny},
	)
	srvConfig := ca.ServerConfig(t, "a.example", "x.b.example", "db.internal.example", "other.example")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &lb.TCPFrontend{Name: "l4", Backend: offload(srvConfig, acl.Filter(rules, mux))}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

	for _, tt := range []struct{ sni, want string }{
		{"a.example", "a"},
		{"x.b.example", "b"},
		{"other.example", "default"},
		{"db.internal.example", "closed"},
		{"A.EXAMPLE", "a"},
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), ca.ClientConfig(tt.sni))
		must(t, err)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got := readLine(c)
		if strings.HasPrefix(got, "error") {
			got = "closed"
		}
		if got != tt.want {
			t.Errorf("SNI %s: %q, want %q", tt.sni, got, tt.want)
		}
		c.Close()
	}
	if st := rules.Stats(); st[0].Hits != 1 || st[1].Hits != 0 || st[2].Hits != 4 || st[3].Hits != 0 {
		t.Errorf("stats = %+v", st)
	}
	if st := srv.Stats(); st.Denied != 1 || st.ConnTotal != 5 {
		t.Errorf("frontend stats: %d denied of %d connections, want 1 of 5", st.Denied, st.ConnTotal)
	}
}

func TestHTTP2ConnectionReusedAcrossHosts(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	app, api, def := testutil.HTTPBackend(t, "app"), testutil.HTTPBackend(t, "api"), testutil.HTTPBackend(t, "default")
	router, err := acl.NewRouter(pool(t, "default", def.Addr),
		acl.Route{Host: []string{"api.example"}, Pool: pool(t, "api", api.Addr)},
		acl.Route{Host: []string{"app.example", "*.app.example"}, Pool: pool(t, "app", app.Addr)},
	)
	must(t, err)
	proxy := &lb.ReverseProxy{Route: router.Route}
	t.Cleanup(func() { proxy.Close() })
	rules := acl.MustCompile(acl.Rule{Name: "api-admin", Host: []string{"api.example"}, PathPrefix: []string{"/admin"}, Action: acl.Deny})

	var conns atomic.Int64
	srvConfig := ca.ServerConfig(t, "app.example", "*.app.example", "api.example", "other.example")
	srvConfig.NextProtos = []string{"h2", "http/1.1"}
	addr := serveHTTP(t, acl.FilterHTTP(rules, proxy), srvConfig, func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	})

	// One client connection, opened for app.example, carries requests for
	// every host, as browsers do when a certificate covers several names.
	tr := &http.Transport{
		TLSClientConfig:   ca.ClientConfig("app.example"),
		ForceAttemptHTTP2: true,
		MaxConnsPerHost:   1,
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	t.Cleanup(c.CloseIdleConnections)
	for _, tt := range []struct{ host, path, backend string }{
		{"app.example", "/", "app"},
		{"api.example", "/v1", "api"},
		{"www.app.example", "/", "app"},
		{"other.example", "/", "default"},
		{"api.example", "/admin", ""},
		{"app.example", "/admin", "app"},
		{"api.example", "/", "api"},
	} {
		r, err := http.NewRequest(http.MethodGet, "https://"+addr+tt.path, nil)
		must(t, err)
		r.Host = tt.host
		resp, err := c.Do(r)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: %s, want HTTP/2", tt.host, resp.Proto)
		}
		wantStatus := 200
		if tt.backend == "" {
			wantStatus = 403
		}
		if got := resp.Header.Get("X-Backend"); got != tt.backend || resp.StatusCode != wantStatus {
			t.Errorf("%s%s: %d from %q, want %d from %q", tt.host, tt.path, resp.StatusCode, got, wantStatus, tt.backend)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("client connections = %d, want 1", n)
	}
}

// TestFilterHTTPDeniesGRPC checks that a denied gRPC request gets the gRPC
// status PERMISSION_DENIED, which gRPC clients report, instead of a 403
// page, and that other requests still get the 403.
func TestFilterHTTPDeniesGRPC(t *testing.T) {
	testutil.CheckLeaks(t)
	rules, err := acl.Compile(acl.Rule{Name: "no-admin", PathPrefix: []string{"/admin."}, Action: acl.Deny})
	must(t, err)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Errorf("denied request %s served", r.URL.Path) })
	addr := serveHTTP(t, acl.FilterHTTP(rules, next), nil, nil)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	for _, ct := range []string{"application/grpc", "application/json"} {
		r, err := http.NewRequest(http.MethodPost, "http://"+addr+"/admin.Users/Delete", strings.NewReader("\x00\x00\x00\x00\x00"))
		must(t, err)
		r.Header.Set("Content-Type", ct)
		resp, err := c.Do(r)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := fmt.Sprintf("%d %s grpc-status=%q body=%q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Grpc-Status"), body)
		want := `200 application/grpc grpc-status="7" body=""`
		if ct != "application/grpc" {
			want = `403 text/plain; charset=utf-8 grpc-status="" body="403 forbidden\n"`
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", ct, got, want)
		}
	}
}
