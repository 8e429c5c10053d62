package sticky_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// dialFrom connects to addr from the loopback address src and returns the
// name the server greets with.
func dialFrom(t *testing.T, src, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("from %s: %v", src, err)
	}
	return name[:len(name)-1]
}

// TestSourceIPL4 runs source-IP stickiness through a real TCPFrontend with
// clients dialling from several loopback addresses.
func TestSourceIPL4(t *testing.T) {
	testutil.CheckLeaks(t)
	var mu sync.Mutex
	moves := map[string][2]string{}
	table := &sticky.SourceIP{OnMove: func(info lb.PickInfo, from, to string) {
		mu.Lock()
		moves[info.Client.Addr().String()] = [2]string{from, to}
		mu.Unlock()
	}}
	pool := &lb.Pool{Name: "tcp", Balancer: &balancer.RoundRobin{}, Affinity: table}
	var servers []lb.Server
	for _, n := range []string{"a", "b", "c"} {
		servers = append(servers, lb.Server{Name: n, Addr: testutil.NameServer(t, n).Addr})
	}
	must(t, pool.Update(servers))
	srv := &lb.TCPFrontend{Name: "l4", Backend: pool}
	addr := serveHTTPFrontend(t, srv)

	const clients = 9
	src := func(i int) string { return fmt.Sprintf("127.0.0.%d", i+2) }
	home := map[string]string{}
	count := map[string]int{}
	for round := range 4 {
		for i := range clients {
			got := dialFrom(t, src(i), addr)
			if round == 0 {
				home[src(i)] = got
				count[got]++
			} else if got != home[src(i)] {
				t.Fatalf("client %s round %d: %s, pinned to %s", src(i), round, got, home[src(i)])
			}
		}
	}
	if len(count) != 3 || count["a"] != 3 {
		t.Fatalf("clients per server = %v, want 3 each", count)
	}
	if st := table.Stats(); st.Entries != clients {
		t.Fatalf("table holds %d entries, want %d", st.Entries, clients)
	}

	pool.SetState("a", lb.StateDown, "test")
	for round := range 3 {
		for i := range clients {
			s := src(i)
			got := dialFrom(t, s, addr)
			mu.Lock()
			to := moves[s][1]
			mu.Unlock()
			switch {
			case home[s] != "a" && got != home[s]:
				t.Fatalf("client %s of %s went to %s", s, home[s], got)
			case home[s] == "a" && got == "a":
				t.Fatalf("client %s still on down server", s)
			case home[s] == "a" && round > 0 && got != to:
				t.Fatalf("client %s moved to %s, now on %s", s, to, got)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(moves) != 3 {
		t.Fatalf("moves = %v, want the 3 clients of a", moves)
	}
	for s, m := range moves {
		if home[s] != "a" || m[0] != "a" || m[1] == "a" {
			t.Fatalf("move of %s: %v (home %s)", s, m, home[s])
		}
	}
}

// serveHTTPFrontend serves an lb.Frontend on loopback until the test ends.
func serveHTTPFrontend(t *testing.T, fe lb.Frontend) string {
	t.Helper()
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- fe.Serve(ln) }()
	t.Cleanup(func() {
		fe.Close()
		if err := <-done; err != lb.ErrFrontendClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestSourceIPL7 pins through a ReverseProxy and announces moves in a
// response header.
func TestSourceIPL7(t *testing.T) {
	testutil.CheckLeaks(t)
	table := &sticky.SourceIP{MovedHeader: "X-Sticky-Moved"}
	pool := &lb.Pool{Name: "web", Balancer: &balancer.RoundRobin{}, Affinity: table}
	must(t, pool.Update([]lb.Server{
		{Name: "s0", Addr: testutil.HTTPBackend(t, "s0").Addr},
		{Name: "s1", Addr: testutil.HTTPBackend(t, "s1").Addr},
	}))
	proxy := &lb.ReverseProxy{Pool: pool}
	url := "http://" + serveHTTP(t, &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}, listen(t), proxy)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	home, h := do(t, c, url)
	if h.Get("X-Sticky-Moved") != "" {
		t.Fatal("first response announces a move")
	}
	for range 3 {
		if got, _ := do(t, c, url); got != home {
			t.Fatalf("went to %s, pinned to %s", got, home)
		}
	}
	pool.SetState(home, lb.StateMaintenance, "")
	moved, h := do(t, c, url)
	if moved == home || h.Get("X-Sticky-Moved") != "1" {
		t.Fatalf("after maintenance: %s, moved header %q", moved, h.Get("X-Sticky-Moved"))
	}
	for range 3 {
		if got, h := do(t, c, url); got != moved || h.Get("X-Sticky-Moved") != "" {
			t.Fatalf("went to %s (moved header %q), re-pinned to %s", got, h.Get("X-Sticky-Moved"), moved)
		}
	}
}

func info(addr string) lb.PickInfo {
	return lb.PickInfo{Client: netip.AddrPortFrom(netip.MustParseAddr(addr), 40000)}
}

func pinnedTo(t *testing.T, table *sticky.SourceIP, snap *lb.Snapshot, addr string) string {
	t.Helper()
	s, ok := table.Lookup(snap, info(addr))
	if !ok {
		return ""
	}
	return s.Name
}

// TestSourceIPTTL: entries expire TTL after their last use; each use
// refreshes them.
func TestSourceIPTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := poolOf(t, "a", "b")
		snap := p.Snapshot()
		table := &sticky.SourceIP{TTL: time.Minute}
		table.Pin(info("10.0.0.1"), snap.Servers[1])
		table.Pin(info("10.0.0.2"), snap.Servers[0])
		time.Sleep(50 * time.Second)
		if got := pinnedTo(t, table, snap, "10.0.0.1"); got != "b" {
			t.Fatalf("after 50s: %q", got)
		}
		time.Sleep(50 * time.Second) // 100s since the pin, 50s since the use
		if got := pinnedTo(t, table, snap, "10.0.0.1"); got != "b" {
			t.Fatalf("refreshed entry after 100s: %q", got)
		}
		if got := pinnedTo(t, table, snap, "10.0.0.2"); got != "" {
			t.Fatalf("unused entry after 100s: %q", got)
		}
		time.Sleep(time.Minute)
		if got := pinnedTo(t, table, snap, "10.0.0.1"); got != "" {
			t.Fatalf("entry a minute after its last use: %q", got)
		}
		if st := table.Stats(); st.Entries != 0 || st.Expired != 2 {
			t.Fatalf("stats %+v, want 0 entries, 2 expired", st)
		}
		// An expired pin is a new pin, not a move.
		moved := false
		table.OnMove = func(lb.PickInfo, string, string) { moved = true }
		table.Pin(info("10.0.0.3"), snap.Servers[0])
		time.Sleep(2 * time.Minute)
		table.Pin(info("10.0.0.3"), snap.Servers[1])
		if moved {
			t.Fatal("re-pinning an expired entry reported a move")
		}
	})
}

// TestSourceIPLRU: a full table evicts its least recently used entry.
func TestSourceIPLRU(t *testing.T) {
	p := poolOf(t, "a")
	snap := p.Snapshot()
	table := &sticky.SourceIP{MaxEntries: 3}
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		table.Pin(info(a), snap.Servers[0])
	}
	pinnedTo(t, table, snap, "10.0.0.1") // .2 is now the least recently used
	table.Pin(info("10.0.0.4"), snap.Servers[0])
	want := map[string]string{"10.0.0.1": "a", "10.0.0.2": "", "10.0.0.3": "a", "10.0.0.4": "a"}
	for a, w := range want {
		if got := pinnedTo(t, table, snap, a); got != w {
			t.Errorf("%s pinned to %q, want %q", a, got, w)
		}
	}
	if st := table.Stats(); st.Entries != 3 || st.Evicted != 1 {
		t.Fatalf("stats %+v, want 3 entries, 1 evicted", st)
	}
	table.Forget(netip.MustParseAddr("10.0.0.3"))
	if got := pinnedTo(t, table, snap, "10.0.0.3"); got != "" || table.Stats().Entries != 2 {
		t.Fatalf("forgotten client pinned to %q", got)
	}
}

func TestSourceIPValidate(t *testing.T) {
	tests := []struct {
		name string
		t    *sticky.SourceIP
		ok   bool
	}{
		{"zero value", &sticky.SourceIP{}, true},
		{"all set", &sticky.SourceIP{MaxEntries: 10, TTL: time.Second, IPv6Prefix: 64, IPv4Prefix: 24}, true},
		{"full prefixes", &sticky.SourceIP{IPv6Prefix: 128, IPv4Prefix: 32}, true},
		{"negative size", &sticky.SourceIP{MaxEntries: -1}, false},
		{"negative TTL", &sticky.SourceIP{TTL: -time.Second}, false},
		{"v6 prefix too long", &sticky.SourceIP{IPv6Prefix: 129}, false},
		{"v4 prefix too long", &sticky.SourceIP{IPv4Prefix: 33}, false},
		{"negative prefix", &sticky.SourceIP{IPv4Prefix: -8}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.t.Validate()
			if (err == nil) != tt.ok || (err != nil && !errorsIs(err, sticky.ErrTableConfig)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestSourceIPBound: the sharded table never holds more than MaxEntries.
func TestSourceIPBound(t *testing.T) {
	p := poolOf(t, "a")
	s := p.Snapshot().Servers[0]
	for _, max := range []int{1, 255, 1000, 20000} {
		table := &sticky.SourceIP{MaxEntries: max}
		for i := range max + max/2 + 10 {
			table.Pin(lb.PickInfo{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1)}, s)
		}
		if st := table.Stats(); st.Entries > max || st.Entries < max*9/10 {
			t.Errorf("MaxEntries %d: %d entries", max, st.Entries)
		}
	}
}

func TestSourceIPKeys(t *testing.T) {
	p := poolOf(t, "a", "b")
	snap := p.Snapshot()
	tests := []struct {
		name       string
		v4, v6     int
		pin, probe string
		shared     bool
	}{
		{"same v4", 0, 0, "10.0.0.1", "10.0.0.1", true},
		{"other v4", 0, 0, "10.0.0.1", "10.0.0.2", false},
		{"v4-mapped v6 is v4", 0, 0, "10.0.0.1", "::ffff:10.0.0.1", true},
		{"v4 /24", 24, 0, "10.0.0.1", "10.0.0.200", true},
		{"v4 /24 other net", 24, 0, "10.0.0.1", "10.0.1.1", false},
		{"whole v6", 0, 0, "2001:db8::1", "2001:db8::2", false},
		{"v6 /64", 0, 64, "2001:db8:0:1::1", "2001:db8:0:1:ffff::2", true},
		{"v6 /64 other net", 0, 64, "2001:db8:0:1::1", "2001:db8:0:2::1", false},
		{"v6 zone ignored", 0, 0, "fe80::1%eth0", "fe80::1%eth1", true},
		{"v6 prefix leaves v4 alone", 0, 64, "10.0.0.1", "10.0.0.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := &sticky.SourceIP{IPv4Prefix: tt.v4, IPv6Prefix: tt.v6}
			table.Pin(info(tt.pin), snap.Servers[1])
			if got := pinnedTo(t, table, snap, tt.probe); (got == "b") != tt.shared {
				t.Fatalf("%s after pinning %s: %q, shared %v", tt.probe, tt.pin, got, tt.shared)
			}
		})
	}
	table := &sticky.SourceIP{}
	table.Pin(lb.PickInfo{}, snap.Servers[0])
	if _, ok := table.Lookup(snap, lb.PickInfo{}); ok || table.Stats().Entries != 0 {
		t.Fatal("a client without address was pinned")
	}
}

func TestSourceIPAllocs(t *testing.T) {
	p := poolOf(t, "a", "b", "c")
	snap := p.Snapshot()
	table := &sticky.SourceIP{MaxEntries: 2}
	in := info("2001:db8::7")
	table.Pin(in, snap.Servers[2])
	if n := testing.AllocsPerRun(1000, func() {
		if s, ok := table.Lookup(snap, in); !ok || s.Name != "c" {
			t.Fatal("lookup failed")
		}
		table.Pin(in, snap.Servers[2])
	}); n != 0 {
		t.Fatalf("Lookup+Pin of a known client allocates %v times", n)
	}
	// A full table reuses evicted entries.
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		table.Pin(lb.PickInfo{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1)}, snap.Servers[0])
	}); n != 0 {
		t.Fatalf("Pin into a full table allocates %v times", n)
	}
}
