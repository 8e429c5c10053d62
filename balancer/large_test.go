package balancer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// loads returns the active count of every server of p, by name.
func loads(p *lb.Pool) map[string]int64 {
	out := map[string]int64{}
	srv, _ := p.Members()
	for _, s := range srv {
		out[s.Name] = s.Active()
	}
	return out
}

// TestLeastConnLargePools states the bounds of LeastConn's windowed picks
// beyond 32 servers: leases acquired through the Pool keep loads within
// one lease per unit of weight of each other; an idle server is found
// within ⌈n/32⌉ picks; picks skip servers that are down or draining.
func TestLeastConnLargePools(t *testing.T) {
	for _, n := range []int{33, 100, 1000} {
		srv := lbtest.Servers(n)
		for i := range srv {
			srv[i].Weight = 1 + i%3
		}
		bal := &balancer.LeastConn{}
		p := lbtest.Pool(t, bal, srv...)
		var leases []lb.Lease
		for range 6 * n {
			l, err := p.Acquire(context.Background(), lb.PickInfo{})
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		// Spread under weights: active/weight within 2 of each other.
		lo, hi := 1e9, 0.0
		for i, a := range srv {
			r := float64(loads(p)[a.Name]) / float64(srv[i].Weight)
			lo, hi = min(lo, r), max(hi, r)
		}
		if hi-lo > 2 {
			t.Errorf("%d servers: active/weight from %.2f to %.2f", n, lo, hi)
		}
		// An idle server is found within ⌈n/32⌉+1 picks.
		idle := leases[0].Server.Name
		for _, l := range leases {
			if l.Server.Name == idle {
				l.Done(lb.Outcome{})
			}
		}
		found := false
		for range (n+31)/32 + 1 {
			if s, _ := bal.Pick(p.Snapshot(), lb.PickInfo{}); s.Name == idle {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%d servers: the idle server %s was not picked within %d picks", n, idle, (n+31)/32+1)
		}
		// Down and draining servers are never picked.
		p.SetHealth(idle, lb.StateDown, "test")
		ctx, cancel := context.WithCancel(context.Background())
		drained := make(chan error, 1)
		go func() { drained <- p.Drain(ctx, srv[1].Name) }()
		testutil.Eventually(t, "the down and draining servers leave the snapshot", func() bool { return len(p.Snapshot().Servers) == n-2 })
		for range 3 * n {
			if s, _ := bal.Pick(p.Snapshot(), lb.PickInfo{}); s.Name == idle || s.Name == srv[1].Name {
				t.Fatalf("%d servers: picked %s, which is down or draining", n, s.Name)
			}
		}
		for _, l := range leases {
			if l.Server.Name != idle {
				l.Done(lb.Outcome{})
			}
		}
		cancel()
		<-drained
	}
}

// TestLeastConnTiesSpreadLarge checks that with every server idle, the
// picks reach every server: within n picks up to 32 servers or a multiple
// of 32, within 32·⌈n/32⌉ picks otherwise (each tile's scan start rotates).
func TestLeastConnTiesSpreadLarge(t *testing.T) {
	for _, n := range []int{10, 64, 1000} {
		picks := 32 * ((n + 31) / 32)
		if n <= 32 {
			picks = n
		}
		p := lbtest.Pool(t, &balancer.LeastConn{}, lbtest.Servers(n)...)
		got := lbtest.Distribution(&balancer.LeastConn{}, p, picks, nil)
		if len(got) != n {
			t.Errorf("%d servers: %d picked in %d picks", n, len(got), picks)
		}
	}
}

// TestPicksConcurrent acquires and releases from several goroutines on a
// large pool (for the race detector), with LeastConn and bounded Hash, and
// checks that every lease ends (the Pool's total returns to zero).
func TestPicksConcurrent(t *testing.T) {
	for _, bal := range []lb.Balancer{&balancer.LeastConn{}, &balancer.Hash{BoundedLoad: 1.25, Key: balancer.SNI}} {
		p := lbtest.Pool(t, bal, lbtest.Servers(200)...)
		infos := lbtest.PickInfos(256)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				var held []lb.Lease
				for i := range 2000 {
					l, err := p.Acquire(context.Background(), infos[(g*7+i)&255])
					if err != nil {
						t.Error(err)
						return
					}
					held = append(held, l)
					if len(held) > 50 {
						held[0].Done(lb.Outcome{})
						held = held[1:]
					}
				}
				for _, l := range held {
					l.Done(lb.Outcome{})
				}
			})
		}
		wg.Wait()
		if a := p.Snapshot().Active(); a != 0 {
			t.Errorf("%T: %d leases still counted", bal, a)
		}
	}
}

// TestHashBoundedLargePool checks the bound with the Pool's total: with
// every pick on one key, no server exceeds ⌈1.25·(total+1)/n⌉ leases.
func TestHashBoundedLargePool(t *testing.T) {
	const n = 100
	p := lbtest.Pool(t, &balancer.Hash{BoundedLoad: 1.25, Key: balancer.SNI}, lbtest.Servers(n)...)
	var leases []lb.Lease
	defer func() {
		for _, l := range leases {
			l.Done(lb.Outcome{})
		}
	}()
	for i := range 5 * n {
		l, err := p.Acquire(context.Background(), lb.PickInfo{SNI: "hot.example"})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
		total := int64(i + 1)
		if got := p.Snapshot().Active(); got != total {
			t.Fatalf("Snapshot.Active %d, want %d", got, total)
		}
		limit := int64((1.25*float64(total)/n)+1) + 1
		if a := l.Server.Active(); a > limit {
			t.Fatalf("after %d leases, %s has %d (bound %d)", total, l.Server.Name, a, limit)
		}
	}
}

// TestLeastConnFullServers fills a pool of 100 servers with MaxConns 1:
// with windowed picks, full servers still lead the Pool to the others, so
// 100 leases land one on each server.
func TestLeastConnFullServers(t *testing.T) {
	const n = 100
	srv := lbtest.Servers(n)
	for i := range srv {
		srv[i].MaxConns = 1
	}
	p := lbtest.Pool(t, &balancer.LeastConn{}, srv...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var leases []lb.Lease
	defer func() {
		for _, l := range leases {
			l.Done(lb.Outcome{})
		}
	}()
	for range n {
		l, err := p.Acquire(ctx, lb.PickInfo{})
		if err != nil {
			t.Fatalf("after %d leases: %v", len(leases), err)
		}
		leases = append(leases, l)
	}
	for name, a := range loads(p) {
		if a != 1 {
			t.Errorf("%s has %d leases, want 1", name, a)
		}
	}
}
