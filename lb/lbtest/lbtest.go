// Package lbtest helps test lb.Balancer implementations: a conformance suite
// that every Balancer should pass, helpers to build pools of fake servers and
// measure how picks are shared, and a standard set of benchmarks.
//
// Typical use, in the tests of a package with a custom Balancer:
//
//	func TestConformance(t *testing.T) {
//		lbtest.Run(t, func() lb.Balancer { return &MyBalancer{} })
//	}
//
//	func TestShares(t *testing.T) {
//		b := &MyBalancer{}
//		srv := lbtest.Servers(3)
//		srv[0].Weight, srv[1].Weight, srv[2].Weight = 1, 2, 3
//		p := lbtest.Pool(t, b, srv...)
//		counts := lbtest.Distribution(b, p, 6000, nil)
//		lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 2, "s2": 3}, 0.02)
//	}
//
//	func BenchmarkMyBalancer(b *testing.B) {
//		lbtest.Benchmark(b, func() lb.Balancer { return &MyBalancer{} })
//	}
//
// Pools built here never dial: their servers have loopback addresses on
// which nothing listens, which is all a Balancer needs.
package lbtest

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

// Servers returns n servers named "s0" … "s<n-1>" with distinct loopback
// addresses ("127.0.0.1:10000" and up) and default weights. Callers may set
// weights, MaxConns, Backup or Meta before passing them to Pool.
func Servers(n int) []lb.Server {
	out := make([]lb.Server, n)
	for i := range out {
		out[i] = lb.Server{
			Name: fmt.Sprintf("s%d", i),
			Addr: fmt.Sprintf("127.0.0.1:%d", 10000+i%50000),
		}
	}
	return out
}

// Pool returns a Pool balanced by b with the given servers, all up. Its
// logger discards events. It fails tb if the servers are invalid.
func Pool(tb testing.TB, b lb.Balancer, servers ...lb.Server) *lb.Pool {
	tb.Helper()
	p := &lb.Pool{
		Name:     tb.Name(),
		Balancer: b,
		Logger:   slog.New(slog.DiscardHandler),
	}
	if err := p.Update(servers); err != nil {
		tb.Fatalf("lbtest: Pool: %v", err)
	}
	return p
}

// Distribution makes n picks with b on p's current snapshot (reloaded before
// every pick, so that state changes show) and counts them by server name.
// info gives the PickInfo of pick i; nil means the zero PickInfo. Picks
// that fail are counted under the empty name. Picks go straight to b, not
// through Pool.Acquire: active counts do not change.
func Distribution(b lb.Balancer, p *lb.Pool, n int, info func(i int) lb.PickInfo) map[string]int {
	counts := make(map[string]int)
	for i := range n {
		var pi lb.PickInfo
		if info != nil {
			pi = info(i)
		}
		s, err := b.Pick(p.Snapshot(), pi)
		if err != nil || s == nil {
			counts[""]++
			continue
		}
		counts[s.Name]++
	}
	return counts
}

// AssertShares checks that counts (from Distribution, say) are shared as
// want says. want holds relative weights by server name (1, 2, 3 or 0.1,
// 0.2, 0.3 alike), normalised to shares; the share of every server must be
// within tolerance of its expected share, relative to it (0.02 allows 19.6%
// to 20.4% for an expected 20%). A server wanted at 0 must have no count; a
// counted server missing from want is an error.
func AssertShares(t testing.TB, counts map[string]int, want map[string]float64, tolerance float64) {
	t.Helper()
	var total int
	for _, c := range counts {
		total += c
	}
	var wsum float64
	for _, w := range want {
		wsum += w
	}
	if total == 0 || wsum <= 0 {
		t.Errorf("lbtest: AssertShares: %d picks, want weights summing to %v", total, wsum)
		return
	}
	names := make([]string, 0, len(want)+len(counts))
	for name := range want {
		names = append(names, name)
	}
	for name := range counts {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		w, wanted := want[name]
		got := float64(counts[name]) / float64(total)
		exp := w / wsum
		switch {
		case !wanted:
			t.Errorf("lbtest: server %q got %d of %d picks (%.2f%%), want none", name, counts[name], total, 100*got)
		case exp == 0 && counts[name] > 0:
			t.Errorf("lbtest: server %q got %d of %d picks, want none", name, counts[name], total)
		case exp > 0 && math.Abs(got/exp-1) > tolerance:
			t.Errorf("lbtest: server %q got %.2f%% of %d picks, want %.2f%% ± %.1f%%",
				name, 100*got, total, 100*exp, 100*tolerance)
		}
	}
}
