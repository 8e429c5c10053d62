package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// connIDKey carries the id of a backend connection in its context.
type connIDKey struct{}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// proxyListen wraps a loopback listener in l and closes it in cleanup.
func proxyListen(t *testing.T, l *proxyproto.Listener) *proxyproto.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	l.Listener = ln
	t.Cleanup(func() { l.Close() })
	return l
}

// proxyBackend is an HTTP server behind a proxyproto.Listener that answers each
// request with the id of the connection it came on and the client address
// that connection's PROXY header carried.
type proxyBackend struct {
	addr           string
	opened, closed atomic.Int64
}

func startProxyBackend(t *testing.T) *proxyBackend {
	t.Helper()
	b := &proxyBackend{}
	l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	b.addr = l.Addr().String()
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%d %s", r.Context().Value(connIDKey{}), r.RemoteAddr)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connIDKey{}, b.opened.Add(1))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				b.closed.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return b
}

// recordingClient is an HTTP client on one keep-alive connection that
// remembers its local address.
type recordingClient struct {
	*http.Client
	tr    *http.Transport
	mu    sync.Mutex
	local string
}

func newRecordingClient(t *testing.T) *recordingClient {
	rc := &recordingClient{}
	rc.tr = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			rc.mu.Lock()
			rc.local = c.LocalAddr().String()
			rc.mu.Unlock()
		}
		return c, err
	}}
	rc.Client = &http.Client{Transport: rc.tr, Timeout: 10 * time.Second}
	t.Cleanup(rc.tr.CloseIdleConnections)
	return rc
}

// get returns the backend connection id and the address it reported.
func (rc *recordingClient) get(t *testing.T, url string) (id, remote string) {
	t.Helper()
	code, body, _ := get(t, rc.Client, url)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	id, remote, _ = strings.Cut(body, " ")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if remote != rc.local {
		t.Fatalf("server connection %s names %s, the client is %s", id, remote, rc.local)
	}
	return id, remote
}

func startL7Hooked(t *testing.T, proxy *lb.ReverseProxy, hooks bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	if hooks {
		srv.ConnContext, srv.ConnState = proxy.ConnContext, proxy.ConnState
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, frontendOf(t, srv), ln, time.Second, proxy) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestReverseProxyPrivateServerConns: with a ProxyHeader, each client
// connection gets server connections of its own, reused by its requests,
// whose PROXY header names it; they close when it closes.
func TestReverseProxyPrivateServerConns(t *testing.T) {
	for _, tc := range []struct {
		name string
		hf   lb.HeaderFunc
	}{{"v1", proxyproto.V1()}, {"v2", proxyproto.V2(proxyproto.V2Options{SSL: true})}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			backend := startProxyBackend(t)
			pool := &lb.Pool{Name: "web", ProxyHeader: tc.hf}
			must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
			url := startL7Hooked(t, &lb.ReverseProxy{Pool: pool}, true)

			a, b := newRecordingClient(t), newRecordingClient(t)
			ids := map[*recordingClient]map[string]bool{a: {}, b: {}}
			for range 4 {
				for _, c := range []*recordingClient{a, b} {
					id, _ := c.get(t, url)
					ids[c][id] = true
				}
			}
			if len(ids[a]) != 1 || len(ids[b]) != 1 {
				t.Fatalf("server connections per client: %v", ids)
			}
			for id := range ids[a] {
				if ids[b][id] {
					t.Fatalf("clients share server connection %s", id)
				}
			}
			if n := backend.opened.Load(); n != 2 {
				t.Fatalf("%d server connections for 2 clients", n)
			}
			a.tr.CloseIdleConnections()
			testutil.Eventually(t, "the server connection of the closed client to close", func() bool { return backend.closed.Load() == 1 })
			b.get(t, url) // b's connection is still there
			if n := backend.opened.Load(); n != 2 {
				t.Fatalf("%d server connections after b's request", n)
			}
		})
	}
}

// TestReverseProxyProxyHeaderWithoutHooks: without ConnContext and
// ConnState each request has a server connection of its own.
func TestReverseProxyProxyHeaderWithoutHooks(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := startProxyBackend(t)
	pool := &lb.Pool{Name: "web", ProxyHeader: proxyproto.V2(proxyproto.V2Options{})}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.addr}}))
	url := startL7Hooked(t, &lb.ReverseProxy{Pool: pool}, false)
	c := newRecordingClient(t)
	seen := map[string]bool{}
	for range 3 {
		id, _ := c.get(t, url)
		seen[id] = true
	}
	if len(seen) != 3 {
		t.Fatalf("server connections %v, want one per request", seen)
	}
	testutil.Eventually(t, "server connections to close", func() bool { return backend.closed.Load() == 3 })
}

// TestReverseProxyPrivateUpgrade: an upgraded stream works over a private
// server connection.
func TestReverseProxyPrivateUpgrade(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "a")
	// The test backend does not read PROXY headers: put a proxyproto.Listener
	// in front of it through an L4 hop of lbkit itself.
	front := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	hopPool := &lb.Pool{Name: "hop"}
	must(t, hopPool.Update([]lb.Server{{Addr: backend.Addr}}))
	hop := &lb.TCPFrontend{Name: "hop", Backend: hopPool}
	hopDone := make(chan error, 1)
	go func() { hopDone <- hop.Serve(front) }()
	t.Cleanup(func() { hop.Close(); <-hopDone })

	pool := &lb.Pool{Name: "web", ProxyHeader: proxyproto.V1()}
	must(t, pool.Update([]lb.Server{{Addr: front.Addr().String()}}))
	url := startL7Hooked(t, &lb.ReverseProxy{Pool: pool}, true)
	c := dial(t, strings.TrimPrefix(url, "http://"))
	defer c.Close()
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	must(t, err)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101") {
		t.Fatalf("response %q", buf[:n])
	}
	if i := strings.Index(string(buf[:n]), "\r\n\r\n"); i+4 != n {
		t.Fatalf("unexpected bytes after the response head: %q", buf[i+4:n])
	}
	_, err = c.Write([]byte("ping"))
	must(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(c, got)
	must(t, err)
	if string(got) != "ping" {
		t.Fatalf("echo %q", got)
	}
	if rec, ok := backend.LastRequest(); !ok || !strings.HasPrefix(rec.RemoteAddr, "127.0.0.1:") {
		t.Fatalf("backend saw %+v", rec)
	}
}

// TestReverseProxyProxyHeaderBeforeTLS: with TLS to the servers
// (bridging), the PROXY header goes first, in clear, then the TLS session.
func TestReverseProxyProxyHeaderBeforeTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	backend := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         ca.ServerConfig(t, "backend.test"),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", r.Proto, r.RemoteAddr)
		}),
	}
	done := make(chan struct{})
	go func() { defer close(done); backend.ServeTLS(l, "", "") }()
	t.Cleanup(func() { backend.Close(); <-done })

	pool := &lb.Pool{Name: "web", ProxyHeader: proxyproto.V2(proxyproto.V2Options{})}
	must(t, pool.Update([]lb.Server{{Addr: l.Addr().String()}}))
	proxy := &lb.ReverseProxy{Pool: pool, Scheme: "https", ServerHTTP2: true, TLSClientConfig: ca.ClientConfig("backend.test")}
	url := startL7Hooked(t, proxy, true)
	c := newRecordingClient(t)
	for range 2 {
		_, body, _ := get(t, c.Client, url)
		proto, remote, _ := strings.Cut(body, " ")
		c.mu.Lock()
		local := c.local
		c.mu.Unlock()
		if proto != "HTTP/2.0" || remote != local {
			t.Fatalf("backend saw %q, want HTTP/2.0 from %s", body, local)
		}
	}
}
