package lb_test

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

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

// pinReporter reports a fixed pin state: the server named pin when it is
// in the snapshot (PinHonoured), PinMoved when it is not; it records the
// servers Pin was called with.
type pinReporter struct {
	mu     sync.Mutex
	pin    string
	pinned []string
}

func (a *pinReporter) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	srv, st := a.LookupPin(s, info)
	return srv, st == lb.PinHonoured
}

func (a *pinReporter) LookupPin(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, lb.PinState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pin == "" {
		return nil, lb.PinNone
	}
	for _, sv := range s.Servers {
		if sv.Name == a.pin {
			return sv, lb.PinHonoured
		}
	}
	return nil, lb.PinMoved
}

func (a *pinReporter) Pin(info lb.PickInfo, s *lb.Server) {
	a.mu.Lock()
	a.pinned = append(a.pinned, s.Name)
	a.mu.Unlock()
}

// TestAcquirePinReporter: Lease.Sticky for a pin honoured, Lease.Moved and
// a new pin for a pin to a server that is down, neither without a pin.
func TestAcquirePinReporter(t *testing.T) {
	aff := &pinReporter{pin: "a"}
	pool := &lb.Pool{Name: "p", Affinity: aff}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}}))
	ctx := context.Background()

	l, err := pool.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	l.Done(lb.Outcome{})
	if l.Server.Name != "a" || !l.Sticky || l.Moved {
		t.Errorf("honoured pin: server %s sticky %v moved %v", l.Server.Name, l.Sticky, l.Moved)
	}
	pool.SetState("a", lb.StateDown, "test")
	l, err = pool.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	l.Done(lb.Outcome{})
	if l.Server.Name != "b" || l.Sticky || !l.Moved {
		t.Errorf("pin to a down server: server %s sticky %v moved %v", l.Server.Name, l.Sticky, l.Moved)
	}
	aff.mu.Lock()
	aff.pin = ""
	aff.mu.Unlock()
	l, err = pool.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	l.Done(lb.Outcome{})
	if l.Sticky || l.Moved {
		t.Errorf("no pin: sticky %v moved %v", l.Sticky, l.Moved)
	}
	aff.mu.Lock()
	defer aff.mu.Unlock()
	if len(aff.pinned) != 2 || aff.pinned[0] != "b" {
		t.Errorf("Pin calls %v, want the moved client re-pinned to b, then the unpinned one", aff.pinned)
	}
}

// TestAcquirePinnedServerLeavesQueue: a client waiting for its full pinned
// server gets another server when that one is removed, as a moved pin.
func TestAcquirePinnedServerLeavesQueue(t *testing.T) {
	testutil.CheckLeaks(t)
	aff := &pinReporter{pin: "a"}
	pool := &lb.Pool{Name: "p", Affinity: aff, QueueTimeout: 10 * time.Second}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1", MaxConns: 1}, {Name: "b", Addr: "127.0.0.1:2"}}))
	held, err := pool.Acquire(context.Background(), lb.PickInfo{})
	must(t, err)
	defer held.Done(lb.Outcome{})
	got := make(chan lb.Lease, 1)
	go func() {
		l, err := pool.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	for deadline := time.Now().Add(5 * time.Second); pool.Stats().QueueCur != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pinned client never queued")
		}
	}
	must(t, pool.Update([]lb.Server{{Name: "b", Addr: "127.0.0.1:2"}}))
	l := <-got
	if l.Server == nil {
		return
	}
	l.Done(lb.Outcome{})
	if l.Server.Name != "b" || l.Sticky || !l.Moved {
		t.Errorf("queued pinned client: server %s sticky %v moved %v", l.Server.Name, l.Sticky, l.Moved)
	}
}
