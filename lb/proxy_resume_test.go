package lb

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestProxyTLSResumption checks that the proxy's new connections to a
// TLS server resume the session of earlier ones, over HTTP/1.1 (the
// engine) and HTTP/2 (net/http's Transport), without modifying the
// configured tls.Config.
func TestProxyTLSResumption(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	for _, h2 := range []bool{false, true} {
		t.Run("http2="+strconv.FormatBool(h2), func(t *testing.T) {
			var mu sync.Mutex
			var resumed []bool
			var protos []int
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				resumed = append(resumed, r.TLS.DidResume)
				protos = append(protos, r.ProtoMajor)
				mu.Unlock()
			}))
			srv.EnableHTTP2 = h2
			srv.TLS = ca.ServerConfig(t, "127.0.0.1")
			srv.StartTLS()
			t.Cleanup(srv.Close)

			pool := &Pool{}
			if err := pool.Update([]Server{{Addr: srv.Listener.Addr().String()}}); err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{RootCAs: ca.Pool()}
			proxy := &ReverseProxy{Pool: pool, Scheme: "https", ServerHTTP2: h2, TLSClientConfig: cfg}
			url := startProxy(t, proxy)
			c := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(c.CloseIdleConnections)
			t.Cleanup(func() { closeIdle(proxy) })
			for i := range 3 {
				if code, _, err := get1(t, c, url); code != 200 || err != nil {
					t.Fatalf("request %d: %d %v", i, code, err)
				}
				closeIdle(proxy) // the next request opens a new connection
			}
			mu.Lock()
			defer mu.Unlock()
			want := 1
			if h2 {
				want = 2
			}
			for i := range resumed {
				if resumed[i] != (i > 0) || protos[i] != want {
					t.Fatalf("resumed %v, HTTP/%v; want resumptions after the first, HTTP/%d", resumed, protos, want)
				}
			}
			if len(resumed) != 3 {
				t.Fatalf("%d requests reached the server", len(resumed))
			}
			if cfg.ClientSessionCache != nil {
				t.Fatal("the configured tls.Config was modified")
			}
		})
	}
}
