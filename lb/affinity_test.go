package lb_test

import (
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// headerAffinity pins every client to the first server it was given and
// reports each response it saw in a header.
type headerAffinity struct {
	mu     sync.Mutex
	pinned *lb.Server
	seen   []bool // sticky flag of each PinResponse
}

func (a *headerAffinity) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sv := range s.Servers {
		if a.pinned != nil && sv.Name == a.pinned.Name {
			return sv, true
		}
	}
	return nil, false
}

func (a *headerAffinity) Pin(info lb.PickInfo, s *lb.Server) {
	a.mu.Lock()
	a.pinned = s
	a.mu.Unlock()
}

func (a *headerAffinity) PinResponse(h http.Header, info lb.PickInfo, s *lb.Server, sticky bool) {
	if info.Request == nil || !info.Client.Addr().Is4() || info.Client.Addr() != netip.MustParseAddr("127.0.0.1") {
		return
	}
	a.mu.Lock()
	a.seen = append(a.seen, sticky)
	a.mu.Unlock()
	h.Set("X-Pinned", s.Name)
}

func TestReverseProxyResponseAffinity(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	aff := &headerAffinity{}
	pool := &lb.Pool{Affinity: aff}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}, {Name: "b", Addr: b.Addr}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool}, 0)
	c := client()
	defer c.CloseIdleConnections()
	for i := range 3 {
		_, body, h := get(t, c, url+"/")
		if got := h.Get("X-Pinned"); got+"\n" != body || got != h.Get("X-Backend") {
			t.Fatalf("request %d: X-Pinned %q, body %q", i, got, body)
		}
	}
	aff.mu.Lock()
	defer aff.mu.Unlock()
	if want := []bool{false, true, true}; len(aff.seen) != 3 || aff.seen[0] != want[0] || aff.seen[1] != want[1] || aff.seen[2] != want[2] {
		t.Fatalf("sticky flags = %v, want %v", aff.seen, want)
	}
}
