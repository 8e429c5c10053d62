package lbtest

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Run checks that the Balancers made by newBalancer honour the contract of
// lb.Balancer, each property in a subtest:
//
//   - Members: every pick is a server of the snapshot it was given, with
//     weighted servers, after servers went down, on a stale snapshot, and
//     with a snapshot of backup servers only;
//   - OneServer: a snapshot of one server always gets that server;
//   - Parallel: 8 goroutines × 10000 picks while another goroutine changes
//     the servers' health; run the tests with -race for this to mean
//     something;
//   - ZeroAllocs: pool.Snapshot() + Pick allocate nothing, for L4 picks
//     (client address, SNI) and HTTP picks (headers, cookies, URI), so that
//     the key paths of hashing balancers are exercised;
//   - Removed: after Update removes a server, picks on the new snapshot
//     never return it (by name: Update publishes new *Server values, so a
//     balancer must not keep servers across snapshots);
//   - AcquireDone: Pool.Acquire and Lease.Done work with the balancer,
//     including avoided servers and servers at their MaxConns, and active
//     counts return to 0.
//
// A conforming Balancer returns a server, never an error, for a non-empty
// snapshot. newBalancer is called once per subtest.
func Run(t *testing.T, newBalancer func() lb.Balancer) {
	t.Helper()
	t.Run("Members", func(t *testing.T) { testMembers(t, newBalancer()) })
	t.Run("OneServer", func(t *testing.T) { testOneServer(t, newBalancer()) })
	t.Run("Parallel", func(t *testing.T) { testParallel(t, newBalancer()) })
	t.Run("ZeroAllocs", func(t *testing.T) { testZeroAllocs(t, newBalancer()) })
	t.Run("Removed", func(t *testing.T) { testRemoved(t, newBalancer()) })
	t.Run("AcquireDone", func(t *testing.T) { testAcquireDone(t, newBalancer()) })
}

// PickInfos returns n varied PickInfos: client addresses (IPv4 and IPv6),
// SNI, and HTTP requests with different paths, queries, headers (X-User,
// X-Session-Id, X-Tenant) and cookies (sid, session, SESSIONID, user), plus
// infos with nothing at all. They are built once; picking with them does not
// allocate.
func PickInfos(n int) []lb.PickInfo {
	out := make([]lb.PickInfo, n)
	for i := range out {
		var pi lb.PickInfo
		switch i % 4 {
		case 0: // L4, IPv4
			pi.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i))
		case 1: // L4 over TLS, IPv6
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}
			pi.Client = netip.AddrPortFrom(netip.AddrFrom16(a), 443)
			pi.SNI = fmt.Sprintf("host%d.example.com", i)
		case 2: // HTTP with every key
			pi.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 40000)
			pi.Request = request(i, true)
		case 3: // HTTP without headers, or nothing at all
			if i%8 == 3 {
				pi.Request = request(i, false)
			}
		}
		out[i] = pi
	}
	return out
}

func request(i int, keys bool) *http.Request {
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: fmt.Sprintf("/item/%d", i), RawQuery: fmt.Sprintf("page=%d", i%7)},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       "www.example.com",
		Header:     make(http.Header),
		RemoteAddr: "192.0.2.1:40000",
	}
	if keys {
		r.Header.Set("X-User", fmt.Sprintf("user%d", i))
		r.Header.Set("X-Session-Id", fmt.Sprintf("%08x", i*2654435761))
		r.Header.Set("X-Tenant", fmt.Sprintf("tenant%d", i%5))
		r.Header.Add("Cookie", fmt.Sprintf("theme=dark; sid=s%d; session=%d", i, i))
		r.Header.Add("Cookie", fmt.Sprintf("SESSIONID=\"%x\"; user=u%d", i, i))
	}
	return r
}

func contains(s *lb.Snapshot, sv *lb.Server) bool {
	for _, x := range s.Servers {
		if x == sv {
			return true
		}
	}
	return false
}

func names(s *lb.Snapshot) []string {
	out := make([]string, len(s.Servers))
	for i, x := range s.Servers {
		out[i] = x.Name
	}
	return out
}

// checkPicks makes n picks on s and fails t unless every one is a server of
// s for which ok returns true.
func checkPicks(t *testing.T, b lb.Balancer, s *lb.Snapshot, infos []lb.PickInfo, n int, what string) {
	t.Helper()
	for i := range n {
		sv, err := b.Pick(s, infos[i%len(infos)])
		if err != nil {
			t.Fatalf("%s: pick %d: error %v on snapshot %v", what, i, err, names(s))
		}
		if sv == nil || !contains(s, sv) {
			t.Fatalf("%s: pick %d returned %v, not a server of snapshot %v", what, i, sv, names(s))
		}
	}
}

func testMembers(t *testing.T, b lb.Balancer) {
	infos := PickInfos(64)
	srv := Servers(6)
	for i := range srv {
		srv[i].Weight = 1 + i%3
	}
	p := Pool(t, b, srv...)
	first := p.Snapshot()
	checkPicks(t, b, first, infos, 1000, "weighted")

	p.SetState("s1", lb.StateDown, "conformance")
	p.SetState("s4", lb.StateMaintenance, "conformance")
	s := p.Snapshot()
	if s.Len() != 4 {
		t.Fatalf("snapshot after 2 servers down: %v", names(s))
	}
	checkPicks(t, b, s, infos, 1000, "after servers went down")
	// A stale snapshot is still a valid input: picks stay within it.
	checkPicks(t, b, first, infos, 200, "stale snapshot")

	for _, name := range []string{"s0", "s2", "s3"} {
		p.SetState(name, lb.StateDown, "conformance")
	}
	checkPicks(t, b, p.Snapshot(), infos, 200, "one server left")

	// Backups take over when no regular server is up.
	srv = Servers(5)
	srv[3].Backup, srv[4].Backup = true, true
	srv[4].Weight = 3
	p = Pool(t, b, srv...)
	checkPicks(t, b, p.Snapshot(), infos, 500, "with backups configured")
	for _, name := range []string{"s0", "s1", "s2"} {
		p.SetState(name, lb.StateDown, "conformance")
	}
	s = p.Snapshot()
	if !s.Backup || s.Len() != 2 {
		t.Fatalf("snapshot with regular servers down: %v (backup %v)", names(s), s.Backup)
	}
	checkPicks(t, b, s, infos, 500, "backups only")
}

func testOneServer(t *testing.T, b lb.Balancer) {
	infos := PickInfos(16)
	srv := Servers(1)
	srv[0].Weight = 7
	p := Pool(t, b, srv...)
	checkPicks(t, b, p.Snapshot(), infos, 100, "one server")
}

func testParallel(t *testing.T, b lb.Balancer) {
	const (
		goroutines = 8
		picks      = 10000
	)
	infos := PickInfos(256)
	srv := Servers(6)
	for i := range srv {
		srv[i].Weight = 1 + i%4
	}
	p := Pool(t, b, srv...)

	var wg sync.WaitGroup
	var failed atomic.Bool
	done := make(chan struct{})
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range picks {
				s := p.Snapshot()
				sv, err := b.Pick(s, infos[(g*picks+i)%len(infos)])
				if err != nil || sv == nil || !contains(s, sv) {
					if !failed.Swap(true) {
						t.Errorf("goroutine %d pick %d: got %v, %v; snapshot %v", g, i, sv, err, names(s))
					}
					return
				}
			}
		}()
	}
	// Concurrent writer: snapshots change (and are prepared) during picks.
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		for i := 0; i < 2000; i++ {
			select {
			case <-done:
				return
			default:
			}
			st := lb.StateDown
			if i%2 == 1 {
				st = lb.StateUp
			}
			p.SetState(fmt.Sprintf("s%d", (i/2)%len(srv)), st, "conformance")
			time.Sleep(50 * time.Microsecond)
		}
	}()
	wg.Wait()
	close(done)
	<-writer
}

func testZeroAllocs(t *testing.T, b lb.Balancer) {
	srv := Servers(5)
	for i := range srv {
		srv[i].Weight = 1 + i%3
	}
	p := Pool(t, b, srv...)
	req := request(1, true)
	cases := []struct {
		name string
		info lb.PickInfo
	}{
		{"empty", lb.PickInfo{}},
		{"client", lb.PickInfo{Client: netip.MustParseAddrPort("192.0.2.10:5555")}},
		{"client6+sni", lb.PickInfo{Client: netip.MustParseAddrPort("[2001:db8::1]:443"), SNI: "www.example.com"}},
		{"request", lb.PickInfo{Client: netip.MustParseAddrPort("192.0.2.10:5555"), Request: req}},
		{"bare request", lb.PickInfo{Request: request(2, false)}},
	}
	for _, c := range cases {
		var err error
		allocs := testing.AllocsPerRun(1000, func() {
			_, err = b.Pick(p.Snapshot(), c.info)
		})
		if err != nil {
			t.Errorf("%s: pick error %v", c.name, err)
		}
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per pick, want 0", c.name, allocs)
		}
	}
}

func testRemoved(t *testing.T, b lb.Balancer) {
	infos := PickInfos(64)
	srv := Servers(4)
	srv[1].Weight = 3
	p := Pool(t, b, srv...)
	old := p.Snapshot()
	checkPicks(t, b, old, infos, 200, "before removal")

	if err := p.Update([]lb.Server{srv[0], srv[2], srv[3]}); err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	checkPicks(t, b, s, infos, 1000, "after removing s1")
	for i := range 1000 {
		if sv, _ := b.Pick(s, infos[i%len(infos)]); sv != nil && sv.Name == "s1" {
			t.Fatalf("pick %d returned removed server s1", i)
		}
	}
	checkPicks(t, b, old, infos, 200, "stale snapshot")

	// Back, with another weight, and then a new server.
	srv[1].Weight = 1
	if err := p.Update(append(srv, lb.Server{Name: "new", Addr: "127.0.0.1:19999", Weight: 2})); err != nil {
		t.Fatal(err)
	}
	checkPicks(t, b, p.Snapshot(), infos, 1000, "after re-adding s1 and adding a server")
}

func testAcquireDone(t *testing.T, b lb.Balancer) {
	infos := PickInfos(64)
	srv := Servers(4)
	for i := range srv {
		srv[i].MaxConns = 3
		srv[i].Weight = 1 + i%2
	}
	p := Pool(t, b, srv...)
	p.QueueTimeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Fill every slot: the Pool must find room through the balancer.
	var leases []lb.Lease
	for i := range 12 {
		l, err := p.Acquire(ctx, infos[i%len(infos)])
		if err != nil {
			t.Fatalf("acquire %d of 12 slots: %v", i, err)
		}
		leases = append(leases, l)
	}
	for _, st := range p.Status() {
		if st.Active != 3 {
			t.Errorf("server %s: %d active with every slot taken, want 3", st.Name, st.Active)
		}
	}
	for _, l := range leases {
		l.Done(lb.Outcome{})
	}

	// Avoided servers are not offered again.
	s0 := p.Snapshot().Servers[0]
	for i := range 50 {
		info := infos[i%len(infos)]
		info.Avoid = []*lb.Server{s0}
		l, err := p.Acquire(ctx, info)
		if err != nil {
			t.Fatalf("acquire avoiding s0: %v", err)
		}
		if l.Server.Name == s0.Name {
			t.Errorf("acquire avoiding s0 returned it")
		}
		l.Done(lb.Outcome{})
	}

	// Concurrent use with queueing: 16 goroutines for 12 slots.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				l, err := p.Acquire(ctx, infos[(g+i)%len(infos)])
				if err != nil {
					t.Errorf("goroutine %d acquire %d: %v", g, i, err)
					return
				}
				if a := l.Server.Active(); a > int64(l.Server.MaxConns) {
					t.Errorf("server %s: %d active, above MaxConns %d", l.Server.Name, a, l.Server.MaxConns)
				}
				l.Done(lb.Outcome{})
			}
		}()
	}
	wg.Wait()
	for _, st := range p.Status() {
		if st.Active != 0 {
			t.Errorf("server %s: %d active after every lease ended, want 0", st.Name, st.Active)
		}
	}
}
