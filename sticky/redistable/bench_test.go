package redistable_test

import (
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky/redistable"
)

// BenchmarkHit measures the data path of a client the local cache knows:
// no round trip to Redis, which is not even running.
func BenchmarkHit(b *testing.B) {
	c := newClient(b, testutil.ClosedAddr(b))
	table := &redistable.Table{Client: c}
	pool := &lb.Pool{Name: "p"}
	must(b, pool.Update([]lb.Server{{Name: "x", Addr: "192.0.2.1:1"}, {Name: "y", Addr: "192.0.2.2:1"}, {Name: "z", Addr: "192.0.2.3:1"}}))
	snap := pool.Snapshot()
	const clients = 1024
	infos := make([]lb.PickInfo, clients)
	for i := range infos {
		infos[i].Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1)
		table.Pin(infos[i], snap.Servers[i%3])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := table.Lookup(snap, infos[i%clients]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
