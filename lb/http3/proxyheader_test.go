package http3_test

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// TestProxyHeaderPerQUICConnection checks that, through the proxy's
// ConnContext and ConnState hooks, each QUIC connection gets server
// connections of its own whose PROXY header names it, and that they close
// with it.
func TestProxyHeaderPerQUICConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open, opened atomic.Int64
	var mu sync.Mutex
	var clients []string // the client address of each request, from the PROXY header
	be := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			clients = append(clients, r.RemoteAddr)
			mu.Unlock()
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
				opened.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go be.Serve(&proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	t.Cleanup(func() { be.Close() })

	pool := &lb.Pool{Name: "pp", ProxyHeader: proxyproto.V1()}
	if err := pool.Update([]lb.Server{{Name: "pp1", Addr: ln.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	e := newEnvPool(t, nil, nil, nil, pool)

	const requests = 3
	for i := range 2 {
		c := newClient(t, e.ca.Pool(), nil)
		for range requests {
			if resp, _, err := do(c.Client, http.MethodGet, e.url("/"), nil); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", resp, err)
			}
		}
		la := c.localAddrs()[0].String()
		mu.Lock()
		got := append([]string(nil), clients[i*requests:]...)
		mu.Unlock()
		for _, a := range got {
			if a != la {
				t.Errorf("client %d: the server saw a request from %s, want %s (the QUIC connection's)", i, a, la)
			}
		}
		if n := opened.Load(); n != int64(i+1) {
			t.Errorf("client %d: %d server connections opened in all, want %d (one per QUIC connection)", i, n, i+1)
		}
		c.tr.Close()
		testutil.Eventually(t, "the server connection to close with the QUIC connection", func() bool { return open.Load() == 0 })
	}
}
