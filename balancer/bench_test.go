package balancer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
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

// BenchmarkPickLoaded measures the balancers that read active counts on
// pools of 10, 100 and 1000 servers (weights 1 to 3) with 2n leases
// already in flight (acquired through the balancer itself), serially and in parallel.
func BenchmarkPickLoaded(b *testing.B) {
	for _, bal := range []struct {
		name string
		new  func() lb.Balancer
	}{
		{"LeastConn", func() lb.Balancer { return &balancer.LeastConn{} }},
		{"HashBounded", func() lb.Balancer { return &balancer.Hash{BoundedLoad: 1.25} }},
	} {
		for _, n := range []int{10, 100, 1000} {
			bl := bal.new()
			srv := lbtest.Servers(n)
			for i := range srv {
				srv[i].Weight = 1 + i%3
			}
			p := lbtest.Pool(b, bl, srv...)
			infos := lbtest.PickInfos(1024)
			for i := range 2 * n {
				l, err := p.Acquire(context.Background(), infos[i&1023])
				if err != nil {
					b.Fatal(err)
				}
				defer l.Done(lb.Outcome{})
			}
			b.Run(fmt.Sprintf("%s/servers=%d/serial", bal.name, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := bl.Pick(p.Snapshot(), infos[i&1023]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run(fmt.Sprintf("%s/servers=%d/parallel", bal.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := bl.Pick(p.Snapshot(), infos[i&1023]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}
