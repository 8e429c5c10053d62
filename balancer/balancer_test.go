package balancer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// builtins lists every built-in balancer, with the hash keys and options.
var builtins = []struct {
	name string
	new  func() lb.Balancer
}{
	{"RoundRobin", func() lb.Balancer { return &balancer.RoundRobin{} }},
	{"LeastConn", func() lb.Balancer { return &balancer.LeastConn{} }},
	{"First", func() lb.Balancer { return balancer.First{} }},
	{"Random", func() lb.Balancer { return balancer.Random{} }},
	{"P2C", func() lb.Balancer { return balancer.P2C{} }},
	{"HashSourceIP", func() lb.Balancer { return &balancer.Hash{} }},
	{"HashHeader", func() lb.Balancer { return &balancer.Hash{Key: balancer.Header("X-User")} }},
	{"HashCookie", func() lb.Balancer { return &balancer.Hash{Key: balancer.Cookie("sid")} }},
	{"HashURI", func() lb.Balancer { return &balancer.Hash{Key: balancer.URI} }},
	{"HashSNI", func() lb.Balancer { return &balancer.Hash{Key: balancer.SNI} }},
	{"HashBounded", func() lb.Balancer { return &balancer.Hash{Key: balancer.Cookie("SESSIONID"), BoundedLoad: 1.25} }},
}

func TestConformance(t *testing.T) {
	for _, b := range builtins {
		t.Run(b.name, func(t *testing.T) { lbtest.Run(t, b.new) })
	}
}

func weighted(weights ...int) []lb.Server {
	srv := lbtest.Servers(len(weights))
	for i, w := range weights {
		srv[i].Weight = w
	}
	return srv
}

func acquire(t *testing.T, p *lb.Pool, info lb.PickInfo) lb.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := p.Acquire(ctx, info)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return l
}

func actives(p *lb.Pool) map[string]int64 {
	out := make(map[string]int64)
	for _, st := range p.Status() {
		out[st.Name] = st.Active
	}
	return out
}

func TestRoundRobinShares(t *testing.T) {
	b := &balancer.RoundRobin{}
	p := lbtest.Pool(t, b, weighted(1, 2, 3)...)
	counts := lbtest.Distribution(b, p, 6000, nil)
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 2, "s2": 3}, 0.02)
	// The schedule makes shares exact over whole cycles.
	if counts["s0"] != 1000 || counts["s1"] != 2000 || counts["s2"] != 3000 {
		t.Errorf("counts %v, want exactly 1000/2000/3000", counts)
	}
}

func TestRoundRobinSmooth(t *testing.T) {
	b := &balancer.RoundRobin{}
	p := lbtest.Pool(t, b, lb.Server{Name: "a", Addr: "127.0.0.1:10001", Weight: 5},
		lb.Server{Name: "b", Addr: "127.0.0.1:10002", Weight: 1},
		lb.Server{Name: "c", Addr: "127.0.0.1:10003", Weight: 1})
	want := []string{"a", "a", "b", "a", "c", "a", "a"} // nginx's sequence
	for i := range 10 * len(want) {
		s, err := b.Pick(p.Snapshot(), lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != want[i%len(want)] {
			t.Fatalf("pick %d: %s, want %s (sequence %v)", i, s.Name, want[i%len(want)], want)
		}
	}
}

func TestRoundRobinEqualWeights(t *testing.T) {
	b := &balancer.RoundRobin{}
	srv := lbtest.Servers(1000)
	for i := range srv {
		srv[i].Weight = 7 // equal: plain rotation, no schedule
	}
	p := lbtest.Pool(t, b, srv...)
	if pr := b.Prepare(p.Snapshot()); pr != nil {
		t.Errorf("Prepare with equal weights = %T, want nil", pr)
	}
	s := p.Snapshot()
	first, _ := b.Pick(s, lb.PickInfo{})
	start := 0
	for i, sv := range s.Servers {
		if sv == first {
			start = i
		}
	}
	for i := 1; i < 2500; i++ {
		got, _ := b.Pick(s, lb.PickInfo{})
		if want := s.Servers[(start+i)%1000]; got != want {
			t.Fatalf("pick %d: %s, want %s", i, got.Name, want.Name)
		}
	}
}

func TestRoundRobinLargeWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		picks   int // whole cycles of the schedule
		tol     float64
	}{
		{"gcd", []int{10, 20, 30}, 6 * 1000, 0.001},
		{"huge", []int{1 << 40, 1 << 39, 1 << 38}, 7 * 1000, 0.001},
		// Scaled to 3151+945+1 = 4097 turns.
		{"scaled", []int{100000, 30000, 7}, 4097 * 3, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &balancer.RoundRobin{}
			p := lbtest.Pool(t, b, weighted(tt.weights...)...)
			counts := lbtest.Distribution(b, p, tt.picks, nil)
			want := make(map[string]float64)
			for i, w := range tt.weights {
				want[fmt.Sprintf("s%d", i)] = float64(w)
			}
			if tt.name == "scaled" { // the tiny server keeps one turn
				want = map[string]float64{"s0": 3151, "s1": 945, "s2": 1}
			}
			lbtest.AssertShares(t, counts, want, tt.tol)
		})
	}

	// Many weighted servers: the schedule is built by deadline, shares stay.
	b := &balancer.RoundRobin{}
	srv := lbtest.Servers(3000)
	want := make(map[string]float64)
	for i := range srv {
		srv[i].Weight = 1 + i%2
		want[srv[i].Name] = float64(srv[i].Weight)
	}
	p := lbtest.Pool(t, b, srv...)
	lbtest.AssertShares(t, lbtest.Distribution(b, p, 2*4500, nil), want, 0.001)
}

func TestRandomShares(t *testing.T) {
	// 60000 picks: the share of a server expected at 1/6 has a standard
	// deviation of 0.91% of itself, so ±5% is beyond 5 standard deviations
	// (a failure probability below 1e-6 per server and run).
	b := balancer.Random{}
	p := lbtest.Pool(t, b, weighted(1, 2, 3)...)
	counts := lbtest.Distribution(b, p, 60000, nil)
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 2, "s2": 3}, 0.05)

	p = lbtest.Pool(t, b, weighted(1, 1, 1, 1)...)
	counts = lbtest.Distribution(b, p, 60000, nil)
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 1, "s2": 1, "s3": 1}, 0.05)
}

func TestP2CShares(t *testing.T) {
	// Idle servers: P2C is a weighted random draw (same bound as Random).
	b := balancer.P2C{}
	p := lbtest.Pool(t, b, weighted(1, 2, 3)...)
	counts := lbtest.Distribution(b, p, 60000, nil)
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 2, "s2": 3}, 0.05)
}

func TestP2CUnderLoad(t *testing.T) {
	// Two servers: both are always candidates, so P2C is least-loaded.
	b := balancer.P2C{}
	p := lbtest.Pool(t, b, weighted(1, 3)...)
	for range 400 {
		acquire(t, p, lb.PickInfo{}) // held: never Done
	}
	a := actives(p)
	if a["s0"] < 98 || a["s0"] > 102 || a["s1"] < 298 || a["s1"] > 302 {
		t.Errorf("active counts %v, want about 100 and 300", a)
	}

	// Four servers: loads stay close (plain random would spread ±20).
	p = lbtest.Pool(t, b, weighted(1, 1, 1, 1)...)
	for range 400 {
		acquire(t, p, lb.PickInfo{})
	}
	for name, n := range actives(p) {
		if n < 90 || n > 110 {
			t.Errorf("server %s: %d active of 400 on 4 servers, want 100 ± 10 (%v)", name, n, actives(p))
		}
	}
}

func TestLeastConn(t *testing.T) {
	b := &balancer.LeastConn{}
	p := lbtest.Pool(t, b, weighted(1, 1, 1)...)
	l0 := acquire(t, p, lb.PickInfo{})
	l1 := acquire(t, p, lb.PickInfo{})
	l2 := acquire(t, p, lb.PickInfo{})
	if l0.Server == l1.Server || l1.Server == l2.Server || l0.Server == l2.Server {
		t.Fatalf("three picks on three idle servers: %s %s %s", l0.Server.Name, l1.Server.Name, l2.Server.Name)
	}
	l1.Done(lb.Outcome{})
	for range 5 { // the freed server is the only least loaded one
		l := acquire(t, p, lb.PickInfo{})
		if l.Server.Name != l1.Server.Name {
			t.Fatalf("picked %s, want the least loaded %s (%v)", l.Server.Name, l1.Server.Name, actives(p))
		}
		l.Done(lb.Outcome{})
	}
}

func TestLeastConnWeighted(t *testing.T) {
	b := &balancer.LeastConn{}
	p := lbtest.Pool(t, b, weighted(1, 3)...)
	for range 400 {
		acquire(t, p, lb.PickInfo{})
	}
	a := actives(p)
	if a["s0"] < 99 || a["s0"] > 101 || a["s1"] < 299 || a["s1"] > 301 {
		t.Errorf("active counts %v, want 100 and 300", a)
	}
}

func TestLeastConnTiesSpread(t *testing.T) {
	b := &balancer.LeastConn{}
	p := lbtest.Pool(t, b, lbtest.Servers(10)...)
	counts := lbtest.Distribution(b, p, 10, nil)
	if len(counts) != 10 {
		t.Errorf("10 picks on 10 idle servers went to %d servers: %v", len(counts), counts)
	}
}

func TestFirst(t *testing.T) {
	b := balancer.First{}
	srv := lbtest.Servers(3)
	for i := range srv {
		srv[i].MaxConns = 2
	}
	p := lbtest.Pool(t, b, srv...)
	p.QueueTimeout = 50 * time.Millisecond
	var held []lb.Lease
	for i, want := range []string{"s0", "s0", "s1", "s1", "s2", "s2"} {
		l := acquire(t, p, lb.PickInfo{})
		if l.Server.Name != want {
			t.Fatalf("lease %d on %s, want %s", i, l.Server.Name, want)
		}
		held = append(held, l)
	}
	// Everything full: Pick returns the first server and the Pool queues.
	if s, _ := b.Pick(p.Snapshot(), lb.PickInfo{}); s.Name != "s0" {
		t.Errorf("all full: Pick = %s, want s0", s.Name)
	}
	if _, err := p.Acquire(context.Background(), lb.PickInfo{}); !errors.Is(err, lb.ErrQueueTimeout) {
		t.Errorf("acquire with every server full: %v, want ErrQueueTimeout", err)
	}
	held[0].Done(lb.Outcome{}) // a slot frees on s0: it fills first again
	if l := acquire(t, p, lb.PickInfo{}); l.Server.Name != "s0" {
		t.Errorf("after a slot freed on s0: lease on %s", l.Server.Name)
	}
}

func TestFirstUnlimited(t *testing.T) {
	b := balancer.First{}
	p := lbtest.Pool(t, b, lbtest.Servers(3)...)
	counts := lbtest.Distribution(b, p, 100, nil)
	if counts["s0"] != 100 {
		t.Errorf("counts %v, want everything on s0", counts)
	}
}
