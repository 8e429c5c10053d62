package balancer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// checkOrder verifies that order gives server i exactly w[i] turns, evenly
// spread: in every prefix of the order, each server's count of turns stays
// within 1.5 of its exact share of the prefix (its lag).
func checkOrder(t *testing.T, name string, order []uint32, w []int64) {
	t.Helper()
	var sum int64
	for _, x := range w {
		sum += x
	}
	if int64(len(order)) != sum {
		t.Fatalf("%s: %d turns, want %d", name, len(order), sum)
	}
	count := make([]int64, len(w))
	for pos, s := range order {
		count[s]++
		for i := range w {
			share := float64(pos+1) * float64(w[i]) / float64(sum)
			if lag := float64(count[i]) - share; lag > 1.5 || lag < -1.5 {
				t.Fatalf("%s: after %d turns server %d (weight %d) had %d, share %.2f", name, pos+1, i, w[i], count[i], share)
			}
		}
	}
	for i, c := range count {
		if c != w[i] {
			t.Fatalf("%s: server %d has %d turns, want %d", name, i, c, w[i])
		}
	}
}

func TestScheduleOrders(t *testing.T) {
	cases := [][]int64{
		{5, 1, 1},
		{1, 2, 3},
		{7, 3, 2, 1},
		{100, 1},
		{13, 13, 1, 1, 1, 40},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		w := make([]int64, 2+rng.IntN(200))
		for i := range w {
			w[i] = 1 + rng.Int64N(1+rng.Int64N(30))
		}
		cases = append(cases, w)
	}
	for _, w := range cases {
		var sum int64
		for _, x := range w {
			sum += x
		}
		checkOrder(t, fmt.Sprint("smooth ", w), smoothOrder(w, sum), w)
		checkOrder(t, fmt.Sprint("deadline ", w), deadlineOrder(w, sum), w)
	}
	// nginx's documented sequence.
	if got := fmt.Sprint(smoothOrder([]int64{5, 1, 1}, 7)); got != "[0 0 1 0 2 0 0]" {
		t.Errorf("smooth 5,1,1 = %s", got)
	}
}

func TestScheduleBound(t *testing.T) {
	w, sum := scaleWeights([]int64{1 << 50, 3, 1 << 49}, 1<<50+3+1<<49, MaxSchedule)
	if sum > MaxSchedule+3 || w[1] != 1 {
		t.Errorf("scaled weights %v (sum %d)", w, sum)
	}
}

func TestMaglevShares(t *testing.T) {
	for _, ws := range [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 2, 3}, {1, 100}, {5, 1, 1, 1}} {
		ms := make([]member, len(ws))
		var total int
		for i, w := range ws {
			ms[i] = member{fmt.Sprintf("server-%d", i), w}
			total += w
		}
		mg := newMaglev(ms)
		count := make([]int, len(ws))
		for pos := range mg.m {
			count[mg.at(pos)]++
		}
		for i, w := range ws {
			want := float64(mg.m) * float64(w) / float64(total)
			if d := float64(count[i]) - want; d > 0.01*want+2 || d < -0.01*want-2 {
				t.Errorf("weights %v: server %d has %d slots, want %.0f", ws, i, count[i], want)
			}
		}
	}
	if m := tableSize(10); m != 65537 {
		t.Errorf("tableSize(10) = %d", m)
	}
	if m := tableSize(1000); m < 100000 || !isPrime(m) {
		t.Errorf("tableSize(1000) = %d", m)
	}
}

// FuzzCookieValue checks the in-place parser against net/http on valid
// input, and that it never panics or returns text outside the line.
func FuzzCookieValue(f *testing.F) {
	for _, s := range []string{"sid=1", "a=b; sid=\"x\"", " sid = 2 ", "sid=; sid=3", ";;", "sid", "sid=\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		v, found := cookieValue(line, "sid")
		if found && !strings.Contains(line, v) {
			t.Fatalf("value %q not in %q", v, line)
		}
		r := &http.Request{Header: http.Header{"Cookie": {line}}}
		c, err := r.Cookie("sid")
		if err == nil && c.Value != "" && c.Quoted == strings.HasPrefix(v, "\"") && found && v != c.Value {
			// net/http drops cookies with invalid bytes, so only a value
			// both parsers found must agree.
			if !strings.ContainsAny(line, "\"\\,\x7f") && isPrintable(line) {
				t.Fatalf("line %q: value %q, net/http %q", line, v, c.Value)
			}
		}
	})
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func TestHashFallbackScan(t *testing.T) {
	// With no slot to probe, picks fall back to a scan of the snapshot,
	// which still honours the bound.
	h := &Hash{BoundedLoad: 1}
	p := lbtest.Pool(t, h, lbtest.Servers(4)...)
	p.Snapshot().Prepared().(*hashState).probes = 0
	hot := lb.PickInfo{Client: netip.MustParseAddrPort("192.0.2.1:1")}
	for range 40 {
		if _, err := p.Acquire(context.Background(), hot); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range p.Status() {
		if st.Active != 10 {
			t.Errorf("server %s: %d active, want 10 with BoundedLoad 1", st.Name, st.Active)
		}
	}

	h = &Hash{}
	p = lbtest.Pool(t, h, lbtest.Servers(4)...)
	p.Snapshot().Prepared().(*hashState).probes = 0
	first, _ := h.Pick(p.Snapshot(), hot)
	for range 10 {
		if s, _ := h.Pick(p.Snapshot(), hot); s != first {
			t.Fatalf("unbounded fallback moved the key from %s to %s", first.Name, s.Name)
		}
	}
}

func TestHashPruning(t *testing.T) {
	// More servers absent than present: a new table without them.
	h := &Hash{}
	p := lbtest.Pool(t, h, lbtest.Servers(10)...)
	if n := len(h.table.names); n != 10 {
		t.Fatalf("table of %d servers", n)
	}
	for i := range 6 {
		p.SetState(fmt.Sprintf("s%d", i), lb.StateDown, "test")
	}
	if n := len(h.table.names); n != 4 {
		t.Errorf("6 of 10 servers down: table of %d servers, want 4", n)
	}
	// Coming back: they join a table that also keeps the absent ones.
	p.SetState("s0", lb.StateUp, "")
	if n := len(h.table.names); n != 5 {
		t.Errorf("table of %d servers, want 5", n)
	}
	p.SetState("s5", lb.StateDown, "") // already down: no change
	p.SetState("s4", lb.StateDown, "")
	if n := len(h.table.names); n != 5 {
		t.Errorf("one more down: table of %d servers, want 5 (kept)", n)
	}
}
