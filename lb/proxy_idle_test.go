package lb_test

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestReverseProxyClosesIdleServerConnections: ForgetPool and
// CloseIdleConnections close the keep-alive connections the proxy holds
// to the servers, which otherwise stay open for the idle timeout.
func TestReverseProxyClosesIdleServerConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var open atomic.Int32 // server connections not closed
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: ln.Addr().String()}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()

	for _, step := range []struct {
		name  string
		close func()
	}{
		{"CloseIdleConnections", proxy.CloseIdleConnections},
		{"ForgetPool", func() { proxy.ForgetPool(pool) }},
	} {
		if code, body, _ := get(t, c, url+"/"); code != 200 || body != "ok" {
			t.Fatalf("before %s: %d %q", step.name, code, body)
		}
		if open.Load() == 0 {
			t.Fatalf("before %s: no server connection kept alive", step.name)
		}
		step.close()
		testutil.Eventually(t, "the idle server connections closed by "+step.name, func() bool { return open.Load() == 0 })
	}
}
