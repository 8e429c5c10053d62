package balancer_test

import (
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb/lbtest"
)

func BenchmarkPick(b *testing.B) {
	for _, bal := range builtins {
		b.Run(bal.name, func(b *testing.B) { lbtest.Benchmark(b, bal.new) })
	}
}

// BenchmarkPrepare measures the per-snapshot work of the balancers that
// precompute: a RoundRobin schedule and a Maglev table, built anew for
// every snapshot (a fresh balancer each time, so nothing is reused).
func BenchmarkPrepare(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		srv := lbtest.Servers(n)
		for i := range srv {
			srv[i].Weight = 1 + i%3
		}
		snap := lbtest.Pool(b, nil, srv...).Snapshot()
		b.Run(fmt.Sprintf("RoundRobin/servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				(&balancer.RoundRobin{}).Prepare(snap)
			}
		})
		b.Run(fmt.Sprintf("Hash/servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				(&balancer.Hash{}).Prepare(snap)
			}
		})
	}
}
