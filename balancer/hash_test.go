package balancer_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// clientKeys returns n PickInfos with distinct client addresses.
func clientKeys(n int) []lb.PickInfo {
	out := make([]lb.PickInfo, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out[i] = lb.PickInfo{Client: netip.AddrPortFrom(a, uint16(1024+i%60000))}
	}
	return out
}

// placement picks once per key on p's current snapshot.
func placement(t *testing.T, b lb.Balancer, p *lb.Pool, keys []lb.PickInfo) []string {
	t.Helper()
	out := make([]string, len(keys))
	s := p.Snapshot()
	for i, k := range keys {
		sv, err := b.Pick(s, k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sv.Name
	}
	return out
}

// moved compares two placements: how many keys moved, and how many of those
// were on a server other than gone (which should not move).
func moved(before, after []string, gone string) (n, strays int) {
	for i := range before {
		if before[i] != after[i] {
			n++
			if before[i] != gone {
				strays++
			}
		}
	}
	return n, strays
}

func TestHashStable(t *testing.T) {
	b := &balancer.Hash{}
	p := lbtest.Pool(t, b, lbtest.Servers(10)...)
	keys := clientKeys(10000)
	base := placement(t, b, p, keys)
	if again := placement(t, b, p, keys); fmt.Sprint(again) != fmt.Sprint(base) {
		t.Fatal("same keys, same snapshot: different servers")
	}
	// The port is not part of the key.
	for i := range 100 {
		k := keys[i]
		k.Client = netip.AddrPortFrom(k.Client.Addr(), 1)
		if s, _ := b.Pick(p.Snapshot(), k); s.Name != base[i] {
			t.Fatalf("key %d: another port moved it to %s from %s", i, s.Name, base[i])
		}
	}
	// A server going down and coming back: every key returns home.
	p.SetState("s3", lb.StateDown, "test")
	down := placement(t, b, p, keys)
	n, strays := moved(base, down, "s3")
	if strays != 0 || n > 1500 {
		t.Errorf("s3 down: %d keys moved, %d of them not from s3", n, strays)
	}
	p.SetState("s3", lb.StateUp, "")
	if back := placement(t, b, p, keys); fmt.Sprint(back) != fmt.Sprint(base) {
		_, strays := moved(base, back, "")
		t.Errorf("s3 back up: %d keys not on their original server", strays)
	}
	// Configuration order does not matter.
	srv := lbtest.Servers(10)
	for i, j := 0, len(srv)-1; i < j; i, j = i+1, j-1 {
		srv[i], srv[j] = srv[j], srv[i]
	}
	b2 := &balancer.Hash{}
	p2 := lbtest.Pool(t, b2, srv...)
	if other := placement(t, b2, p2, keys); fmt.Sprint(other) != fmt.Sprint(base) {
		t.Error("reversed configuration order: different placement")
	}
}

func TestHashMinimalDisruption(t *testing.T) {
	b := &balancer.Hash{}
	srv := lbtest.Servers(10)
	p := lbtest.Pool(t, b, srv...)
	keys := clientKeys(10000)
	base := placement(t, b, p, keys)

	// Remove s4 from the configuration.
	if err := p.Update(append(srv[:4:4], srv[5:]...)); err != nil {
		t.Fatal(err)
	}
	after := placement(t, b, p, keys)
	n, strays := moved(base, after, "s4")
	t.Logf("removing 1 of 10 servers moved %d of %d keys", n, len(keys))
	if n > 1500 {
		t.Errorf("removing 1 of 10 servers moved %d of %d keys, want ≤ 15%%", n, len(keys))
	}
	if strays != 0 {
		t.Errorf("%d keys moved from surviving servers", strays)
	}

	// Adding a new server rebuilds the table: about its share moves.
	if err := p.Update(append(srv, lb.Server{Name: "s10", Addr: "127.0.0.1:19010"})); err != nil {
		t.Fatal(err)
	}
	grown := placement(t, b, p, keys)
	n, _ = moved(base, grown, "")
	t.Logf("adding an 11th server moved %d of %d keys", n, len(keys))
	if n > 1500 {
		t.Errorf("adding an 11th server moved %d of %d keys, want ≤ 15%%", n, len(keys))
	}
}

func TestHashAvoid(t *testing.T) {
	// Retries (PickInfo.Avoid) use a derived snapshot: keys of the other
	// servers stay where they are.
	b := &balancer.Hash{}
	p := lbtest.Pool(t, b, lbtest.Servers(5)...)
	keys := clientKeys(2000)
	base := placement(t, b, p, keys)
	s2 := p.Snapshot().Servers[2]
	for i, k := range keys {
		k.Avoid = []*lb.Server{s2}
		l := acquire(t, p, k)
		if l.Server.Name == "s2" || (base[i] != "s2" && l.Server.Name != base[i]) {
			t.Fatalf("key %d avoiding s2: %s, was %s", i, l.Server.Name, base[i])
		}
		l.Done(lb.Outcome{})
	}
}

func TestHashWeights(t *testing.T) {
	// 60000 distinct keys: same statistical bound as Random (±5%).
	b := &balancer.Hash{}
	p := lbtest.Pool(t, b, weighted(1, 2, 3)...)
	keys := clientKeys(60000)
	counts := lbtest.Distribution(b, p, len(keys), func(i int) lb.PickInfo { return keys[i] })
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 2, "s2": 3}, 0.05)
}

func TestHashNoKey(t *testing.T) {
	// Requests without the header spread like a weighted rotation.
	b := &balancer.Hash{Key: balancer.Header("X-User")}
	p := lbtest.Pool(t, b, weighted(1, 1, 2)...)
	req := &http.Request{Header: http.Header{}, URL: &url.URL{Path: "/"}}
	counts := lbtest.Distribution(b, p, 20000, func(int) lb.PickInfo { return lb.PickInfo{Request: req} })
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 1, "s2": 2}, 0.1)
}

func TestHashBoundedLoad(t *testing.T) {
	hot := lb.PickInfo{Client: netip.MustParseAddrPort("192.0.2.1:1234")}
	// Without a bound, one hot key loads one server.
	b := &balancer.Hash{}
	p := lbtest.Pool(t, b, lbtest.Servers(4)...)
	for range 100 {
		acquire(t, p, hot)
	}
	if a := actives(p); len(a) != 4 || maxOf(a) != 100 {
		t.Fatalf("unbounded: %v, want 100 on one server", a)
	}

	// With a bound, the hot server is capped at ⌈1.25 × 100 / 4⌉ = 32.
	b = &balancer.Hash{BoundedLoad: 1.25}
	p = lbtest.Pool(t, b, lbtest.Servers(4)...)
	home, _ := b.Pick(p.Snapshot(), hot)
	var leases []lb.Lease
	for range 100 {
		leases = append(leases, acquire(t, p, hot))
	}
	a := actives(p)
	if a[home.Name] != 32 || maxOf(a) > 32 {
		t.Errorf("bounded 1.25: %v, want the hot server %s at 32 and none above", a, home.Name)
	}
	// Load drops: the key goes home again.
	for _, l := range leases {
		l.Done(lb.Outcome{})
	}
	if s, _ := b.Pick(p.Snapshot(), hot); s.Name != home.Name {
		t.Errorf("after load dropped: %s, want %s", s.Name, home.Name)
	}
}

func maxOf(m map[string]int64) int64 {
	var x int64
	for _, v := range m {
		x = max(x, v)
	}
	return x
}

func TestKeys(t *testing.T) {
	r := &http.Request{
		Host:   "shop.example.com",
		URL:    &url.URL{Path: "/cart", RawQuery: "id=7"},
		Header: http.Header{},
	}
	r.Header.Set("X-User", "alice")
	r.Header.Add("Cookie", "theme=dark; lang=fr")
	r.Header.Add("Cookie", `sid="abc123"; other=1`)
	info := lb.PickInfo{Request: r, Client: netip.MustParseAddrPort("192.0.2.9:4000"), SNI: "shop.example.com"}

	tests := []struct {
		name string
		key  balancer.Key
		want string // the hashed text; "" for no key
	}{
		{"header", balancer.Header("x-user"), "alice"},
		{"missing header", balancer.Header("X-Tenant"), ""},
		{"host", balancer.Header("Host"), "shop.example.com"},
		{"cookie", balancer.Cookie("lang"), "fr"},
		{"quoted cookie in second header", balancer.Cookie("sid"), "abc123"},
		{"missing cookie", balancer.Cookie("SID"), ""},
		{"uri", balancer.URI, "/cart?id=7"},
		{"sni", balancer.SNI, "shop.example.com"},
	}
	for _, tt := range tests {
		h, ok := tt.key(info)
		if ok != (tt.want != "") || (ok && h != balancer.HashString(tt.want)) {
			t.Errorf("%s: (%x, %v), want the hash of %q", tt.name, h, ok, tt.want)
		}
	}
	// The cookie parser agrees with net/http.
	for _, line := range []string{
		"sid=1", " sid = 2 ", "a=b;sid=3", "a=b; sid=\"4\"", "sidx=5; sid=6", "sid=; sid=7", "xsid=8",
		"a=1;;sid=9", "sid", "", "sid=\"\"", "a=\"x\"; sid=10;",
	} {
		req := &http.Request{Header: http.Header{"Cookie": {line}}}
		got, ok := balancer.Cookie("sid")(lb.PickInfo{Request: req})
		c, err := req.Cookie("sid")
		want := err == nil && c.Value != ""
		if ok != want || (ok && got != balancer.HashString(c.Value)) {
			t.Errorf("Cookie %q: (%x, %v); net/http: %v, %v", line, got, ok, c, err)
		}
	}
	// No request, no HTTP key; no client, no source key.
	for _, k := range []balancer.Key{balancer.Header("X-User"), balancer.Cookie("sid"), balancer.URI, balancer.SourceIP, balancer.SNI} {
		if _, ok := k(lb.PickInfo{}); ok {
			t.Error("a key found in an empty PickInfo")
		}
	}
	// IPv4 and IPv4-mapped IPv6 are one client.
	a, _ := balancer.SourceIP(lb.PickInfo{Client: netip.MustParseAddrPort("192.0.2.9:1")})
	b, _ := balancer.SourceIP(lb.PickInfo{Client: netip.MustParseAddrPort("[::ffff:192.0.2.9]:2")})
	if a != b {
		t.Error("IPv4 and IPv4-mapped IPv6 hash differently")
	}
}
