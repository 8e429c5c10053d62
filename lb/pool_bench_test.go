package lb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

// BenchmarkAcquire measures the per-pick cost of a Pool with its default
// balancer: snapshot load, pick, active-count add, and Done.
func BenchmarkAcquire(b *testing.B) {
	for _, n := range []int{1, 10, 1000} {
		for _, maxConns := range []int{0, 1 << 20} {
			var p lb.Pool
			list := make([]lb.Server, n)
			for i := range list {
				list[i] = lb.Server{Addr: fmt.Sprintf("127.0.0.1:%d", 10000+i), MaxConns: maxConns}
			}
			if err := p.Update(list); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			name := fmt.Sprintf("servers=%d/maxconns=%v", n, maxConns > 0)
			b.Run(name+"/serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					l, _ := p.Acquire(ctx, lb.PickInfo{})
					l.Done(lb.Outcome{})
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						l, _ := p.Acquire(ctx, lb.PickInfo{})
						l.Done(lb.Outcome{})
					}
				})
			})
		}
	}
}
