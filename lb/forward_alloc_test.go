package lb_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestForwardAllocs counts the allocations of a request through the
// forwarding path and through httputil.ReverseProxy (which the proxy uses
// with a positive FlushInterval), with a server that answers at once: the
// first must stay within its budget and below the second, so that a
// change that adds some is seen.
func TestForwardAllocs(t *testing.T) {
	skipUnderRace(t)
	addr := testutil.FastBackend(t)
	count := func(flush time.Duration) float64 {
		pool := &lb.Pool{}
		if err := pool.Update([]lb.Server{{Addr: addr}}); err != nil {
			t.Fatal(err)
		}
		proxy := &lb.ReverseProxy{Pool: pool, FlushInterval: flush}
		defer proxy.CloseIdleConnections()
		w := &testutil.DiscardWriter{H: http.Header{}}
		r := httptest.NewRequest("GET", "http://lb.test/", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		serve := func() {
			clear(w.H)
			proxy.ServeHTTP(w, r)
		}
		serve()
		return testing.AllocsPerRun(200, serve)
	}
	own, ref := count(0), count(time.Hour)
	t.Logf("allocations per request: %.1f forwarding, %.1f through httputil.ReverseProxy", own, ref)
	if own > forwardAllocBudget || own > ref-8 {
		t.Errorf("%.1f allocations per request, want at most %d and at least 8 fewer than httputil's %.1f",
			own, forwardAllocBudget, ref)
	}
}

// forwardAllocBudget is what TestForwardAllocs allows a request through
// the forwarding path, the server's response included.
const forwardAllocBudget = 34
