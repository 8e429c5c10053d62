package sticky_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

func benchPool(b *testing.B, n int) *lb.Pool {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("server-%d", i)
	}
	return poolOf(b, names...)
}

func BenchmarkCookieLookup(b *testing.B) {
	p := benchPool(b, 16)
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}, {Secret: key2}}}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "session=0123456789; LBSTICKY="+issue(b, ck, p, "server-7")+"; theme=dark")
	info := lb.PickInfo{Request: r}
	snap := p.Snapshot()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := ck.Lookup(snap, info); !ok {
				b.Fatal("not pinned")
			}
		}
	})
}

// BenchmarkCookiePin measures pinning a new client: the Set-Cookie of
// PinResponse.
func BenchmarkCookiePin(b *testing.B) {
	p := benchPool(b, 16)
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	snap := p.Snapshot()
	ck.Lookup(snap, lb.PickInfo{Request: httptest.NewRequest("GET", "/", nil)}) // build the table
	info := lb.PickInfo{Request: httptest.NewRequest("GET", "/", nil)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := http.Header{}
		i := 0
		for pb.Next() {
			ck.PinResponse(h, info, snap.Servers[i%len(snap.Servers)], false)
			delete(h, "Set-Cookie")
			i++
		}
	})
}

func BenchmarkSourceIPLookup(b *testing.B) {
	p := benchPool(b, 16)
	snap := p.Snapshot()
	table := &sticky.SourceIP{}
	const clients = 1 << 14
	infos := make([]lb.PickInfo, clients)
	for i := range infos {
		infos[i] = lb.PickInfo{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1234)}
		table.Pin(infos[i], snap.Servers[i%len(snap.Servers)])
	}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(7919)
		for pb.Next() {
			i++
			if _, ok := table.Lookup(snap, infos[i%clients]); !ok {
				b.Fatal("not pinned")
			}
		}
	})
}

// BenchmarkSourceIPPin pins a stream of new clients into a full table.
func BenchmarkSourceIPPin(b *testing.B) {
	p := benchPool(b, 16)
	snap := p.Snapshot()
	table := &sticky.SourceIP{MaxEntries: 1 << 14}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(1 << 32)
		for pb.Next() {
			i++
			a := netip.AddrFrom4([4]byte{byte(i >> 32), byte(i >> 16), byte(i >> 8), byte(i)})
			table.Pin(lb.PickInfo{Client: netip.AddrPortFrom(a, 1)}, snap.Servers[i%uint64(len(snap.Servers))])
		}
	})
}
