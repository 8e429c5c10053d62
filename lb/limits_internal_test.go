package lb

import (
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// addrN returns the n-th address of 10.0.0.0/8.
func addrN(n int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 10<<24|uint32(n))
	return netip.AddrFrom4(b)
}

func TestClientTableStaysBounded(t *testing.T) {
	for _, maxClients := range []int{1, 10, 100, 5000} {
		l := &Limits{ClientMaxConns: 1, MaxClients: maxClients}
		l.init()
		now := time.Unix(1_000_000, 0)
		for i := range 50_000 {
			e, _ := l.table.open(addrN(i), now)
			if e == nil {
				t.Fatalf("MaxClients %d: client %d untracked with no open connection", maxClients, i)
			}
			l.table.close(e, now)
		}
		if n := l.table.len(); n > maxClients || n < maxClients/2 {
			t.Errorf("MaxClients %d: %d clients after 50000 addresses", maxClients, n)
		}
	}
}

func TestClientTableEvictsTheOldestIdleClient(t *testing.T) {
	l := &Limits{ClientMaxConns: 5, MaxClients: 3} // one shard
	l.init()
	now := time.Unix(1_000_000, 0)
	busy, _ := l.table.open(addrN(0), now) // stays open
	for i := 1; i <= 2; i++ {
		e, _ := l.table.open(addrN(i), now)
		l.table.close(e, now)
	}
	l.table.touch(addrN(1), now) // 2 is now the least recently used idle client
	if e, _ := l.table.open(addrN(3), now); e == nil {
		t.Fatal("a new client was not tracked")
	}
	s := &l.table.shards[0]
	for i, want := range []bool{true, true, false, true} {
		if _, ok := s.m[addrN(i)]; ok != want {
			t.Errorf("client %d in the table: %v, want %v", i, ok, want)
		}
	}
	// A client evicted and seen again starts from zero connections, but a
	// client with open connections is never evicted, so its count holds.
	if _, conns := l.table.open(addrN(0), now); conns != 2 {
		t.Errorf("the busy client has %d connections, want 2", conns)
	}
	_ = busy
}

func TestClientTableFullOfOpenConnectionsServesUntracked(t *testing.T) {
	l := &Limits{ClientMaxConns: 5, MaxClients: 2}
	l.init()
	now := time.Unix(1_000_000, 0)
	l.table.open(addrN(0), now)
	l.table.open(addrN(1), now)
	if e, _ := l.table.open(addrN(2), now); e != nil {
		t.Fatal("a client was tracked beyond MaxClients")
	}
	if st := l.Stats(); st.Untracked != 1 || st.Clients != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientTableExpiresIdleClients(t *testing.T) {
	l := &Limits{ClientMaxConns: 5, MaxClients: 10, ClientIdle: time.Minute}
	l.init()
	now := time.Unix(1_000_000, 0)
	for i := range 5 {
		e, _ := l.table.open(addrN(i), now)
		if i > 0 {
			l.table.close(e, now)
		}
	}
	// A minute later the idle clients expire when a new client comes;
	// client 0 has an open connection and stays.
	l.table.open(addrN(100), now.Add(time.Minute+time.Second))
	if n := l.table.len(); n != 2 {
		t.Errorf("%d clients after the others expired, want 2", n)
	}
}

func TestClientIdleCoversTheRefill(t *testing.T) {
	l := &Limits{ClientRate: 0.01, ClientBurst: 10, ClientIdle: time.Second}
	l.init()
	if want := 1000 * time.Second; l.table.idle != want {
		t.Errorf("idle %v, want %v: the time to refill 10 tokens at 0.01/s", l.table.idle, want)
	}
}

func TestClientKeys(t *testing.T) {
	l := &Limits{ClientRate: 1, ClientIPv6Prefix: 64}
	l.init()
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::7"},
		{"fe80::1%eth0", "fe80::1"},
	} {
		ka, _ := l.table.key(netip.MustParseAddr(tc.a))
		kb, _ := l.table.key(netip.MustParseAddr(tc.b))
		if ka != kb {
			t.Errorf("%s and %s are different clients: %v, %v", tc.a, tc.b, ka, kb)
		}
	}
	ka, _ := l.table.key(netip.MustParseAddr("2001:db8:1:2::1"))
	kb, _ := l.table.key(netip.MustParseAddr("2001:db8:1:3::1"))
	if ka == kb {
		t.Error("two /64 networks are one client")
	}
	if _, ok := l.table.key(netip.Addr{}); ok {
		t.Error("an invalid address has a key")
	}
}

// BenchmarkLimitsRequest measures the per-request check of a ReverseProxy:
// off (no Limits), and with a rate limit that lets everything through, the
// client found through its connection (ConnContext) or by RemoteAddr.
func BenchmarkLimitsRequest(b *testing.B) {
	run := func(b *testing.B, p *ReverseProxy, r *http.Request) {
		b.ReportAllocs()
		w := httptest.NewRecorder()
		for b.Loop() {
			if p.Limits != nil && !p.limitRequest(w, r) {
				b.Fatal("refused")
			}
		}
	}
	r := httptest.NewRequest("GET", "http://lb.test/", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	b.Run("off", func(b *testing.B) { run(b, &ReverseProxy{}, r) })
	lim := &Limits{ClientRate: 1e12, ClientBurst: 1 << 30, ClientMaxConns: 1 << 20}
	b.Run("by-addr", func(b *testing.B) { run(b, &ReverseProxy{Limits: lim}, r) })
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	lc := lim.admit(c1, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:40000")), false)
	defer lc.Close()
	rc := r.WithContext(lim.ConnContext(r.Context(), lc))
	b.Run("by-conn", func(b *testing.B) { run(b, &ReverseProxy{Limits: lim}, rc) })
}

// BenchmarkLimitsConn measures the per-connection admission and release,
// in parallel over many clients: a slot (MaxConns) and the client's count
// and rate.
func BenchmarkLimitsConn(b *testing.B) {
	for _, tc := range []struct {
		name string
		lim  *Limits
	}{
		{"maxconn", &Limits{MaxConns: 1 << 20}},
		{"clients", &Limits{MaxConns: 1 << 20, ClientMaxConns: 1 << 20, ClientRate: 1e12, ClientBurst: 1 << 30}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tc.lim.init()
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			conns := make([]net.Conn, 4096) // built once, as accepted sockets are
			for i := range conns {
				conns[i] = addrConn{c1, net.TCPAddrFromAddrPort(netip.AddrPortFrom(addrN(i), 40000))}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					tc.lim.slots <- struct{}{}
					lc := tc.lim.admit(conns[i%len(conns)], conns[i%len(conns)].RemoteAddr(), true)
					lc.closed.Store(true) // release without closing the pipe
					if lc.client != nil {
						tc.lim.table.close(lc.client, tc.lim.now())
					}
					tc.lim.releaseSlot()
				}
			})
		})
	}
}

// addrConn is a net.Conn with a given remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
