package lbtest

import (
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

// Benchmark measures Pick (with the snapshot load that precedes it in a
// Pool) for Balancers made by newBalancer, with 1, 10 and 1000 servers of
// mixed weights, serially and with b.RunParallel. Picks cycle through the
// varied infos of PickInfos, so hashing balancers read real keys.
// Allocations are reported; a Balancer should show 0 allocs/op.
func Benchmark(b *testing.B, newBalancer func() lb.Balancer) {
	for _, n := range []int{1, 10, 1000} {
		bal := newBalancer()
		srv := Servers(n)
		for i := range srv {
			srv[i].Weight = 1 + i%3
		}
		p := Pool(b, bal, srv...)
		infos := PickInfos(1024)
		b.Run(fmt.Sprintf("servers=%d/serial", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := bal.Pick(p.Snapshot(), infos[i&1023]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("servers=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := bal.Pick(p.Snapshot(), infos[i&1023]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
