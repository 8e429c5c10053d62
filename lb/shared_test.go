package lb_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// countRater admits the first n requests of each client and records the
// keys it was asked about.
type countRater struct {
	n    int
	mu   sync.Mutex
	seen map[netip.Addr]int
}

func (r *countRater) Allow(_ context.Context, key netip.Addr) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[netip.Addr]int)
	}
	r.seen[key]++
	if r.seen[key] > r.n {
		return false, 3 * time.Second
	}
	return true, 0
}

func (r *countRater) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[netip.MustParseAddr(key)]
}

// TestClientRaterL7 replaces the local buckets by a ClientRater: it alone
// decides, its retry becomes Retry-After, its refusals count as
// ClientRate's.
func TestClientRaterL7(t *testing.T) {
	testutil.CheckLeaks(t)
	rater := &countRater{n: 2}
	// ClientRate would admit everything: the rater decides instead.
	lim := &lb.Limits{ClientRate: 1000, ClientRater: rater}
	proxy := &lb.ReverseProxy{Pool: webPool(t)}
	addr := startLimitedL7(t, proxy, lim, nil)
	c := httpDial(t, "127.0.0.1", addr)
	for i, want := range []int{200, 200, 429} {
		resp := c.get(t)
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") != "3" {
			t.Fatalf("429 header %v; want Retry-After: 3", resp.Header)
		}
	}
	if resp := httpDial(t, "127.0.0.2", addr).get(t); resp.StatusCode != 200 {
		t.Fatalf("another client: status %d", resp.StatusCode)
	}
	if got := rater.count("127.0.0.1"); got != 3 {
		t.Fatalf("the rater was asked %d times about 127.0.0.1, want 3", got)
	}
	if st := lim.Stats(); st.ClientRate != 1 {
		t.Errorf("limit stats %+v, want 1 ClientRate refusal", st)
	}
}

// TestClientRaterL4 asks the rater once per connection, keyed by the
// client's address.
func TestClientRaterL4(t *testing.T) {
	testutil.CheckLeaks(t)
	rater := &countRater{n: 1}
	lim := &lb.Limits{ClientRater: rater}
	fe, addr := nameFrontend(t, lim, nil)
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("greeting %q", got)
	}
	expectClosed(t, dialFrom(t, "127.0.0.1", addr), "a connection the rater refuses")
	if got := readName(t, dialFrom(t, "127.0.0.2", addr)); got != "a" {
		t.Fatalf("another client: greeting %q", got)
	}
	if st := fe.Stats(); st.Denied != 1 {
		t.Errorf("Denied = %d, want 1", st.Denied)
	}
}

// blockRater holds every Allow until release is closed, counting the
// calls in flight.
type blockRater struct {
	inFlight atomic.Int32
	release  chan struct{}
}

func (r *blockRater) Allow(ctx context.Context, _ netip.Addr) (bool, time.Duration) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	return true, 0
}

// TestClientRaterL4DoesNotSerialiseAccepts checks that a slow rater (a
// Redis round trip) is asked on each connection's goroutine: with the
// rater holding every decision, all the connections reach it at once,
// where asking it on the accept loop would let one through at a time.
func TestClientRaterL4DoesNotSerialiseAccepts(t *testing.T) {
	testutil.CheckLeaks(t)
	const n = 16
	rater := &blockRater{release: make(chan struct{})}
	lim := &lb.Limits{ClientRater: rater}
	fe, addr := nameFrontend(t, lim, nil)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(rater.release) }) }) // before the frontend's
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialFrom(t, "127.0.0.1", addr)
	}
	testutil.Eventually(t, "every connection waiting for the rater at once", func() bool {
		return rater.inFlight.Load() == n
	})
	if st := fe.Stats(); st.ConnCur != 0 {
		t.Errorf("ConnCur %d before the rater decided, want 0", st.ConnCur)
	}
	release.Do(func() { close(rater.release) })
	for i, c := range conns {
		if got := readName(t, c); got != "a" {
			t.Fatalf("connection %d: greeting %q", i, got)
		}
	}
}
