package main

import (
	"runtime"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, headroom uint64
		max, want      int
	}{
		{0, 32 * mib, 400, 400},
		{4 * mib, 32 * mib, 400, 400},  // a busy proxy: the ceiling
		{8 * mib, 32 * mib, 400, 400},  // the ceiling's last live heap
		{16 * mib, 32 * mib, 400, 200}, // 32 MiB over 16
		{20 * mib, 32 * mib, 400, 160}, // 32 MiB over 20
		{64 * mib, 32 * mib, 400, 100}, // never below 100
		{1 << 40, 32 * mib, 400, 100},  // nor for a huge heap
		{16 * mib, 32 * mib, 150, 150}, // a lower ceiling holds
		{10 * mib, 1 << 62, 400, 400},  // a huge headroom: the ceiling
	} {
		if got := gcPercentFor(tc.live, tc.headroom, tc.max); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB, %d) = %d, want %d", tc.live/mib, tc.headroom/mib, tc.max, got, tc.want)
		}
	}
}

// TestGCPacerAdjust: the pacer sets a new percent only when it moves by
// more than a tenth.
func TestGCPacerAdjust(t *testing.T) {
	const mib = 1 << 20
	var set []int
	p := &gcPacer{max: 400, headroom: 32 * mib, set: func(v int) int { set = append(set, v); return 0 }}
	p.current.Store(400)
	for _, live := range []uint64{4 * mib, 16 * mib, 17 * mib, 20 * mib, 64 * mib, 65 * mib, 2 * mib} {
		p.adjust(live)
	}
	// 4 MiB: 400 (unchanged); 16: 200; 17: 188 (within a tenth of 200);
	// 20: 160; 64 and 65: 100; 2: 400.
	want := []int{200, 160, 100, 400}
	if len(set) != len(want) {
		t.Fatalf("set %v, want %v", set, want)
	}
	for i := range want {
		if set[i] != want[i] {
			t.Fatalf("set %v, want %v", set, want)
		}
	}
}

// TestGCPacerRuns: an armed pacer reads the live heap after a real
// collection and sets the percent for it (recorded here, so that the
// test process keeps its own GC settings).
func TestGCPacerRuns(t *testing.T) {
	var mu sync.Mutex
	var set []int
	// One byte of headroom: whatever the live heap, the percent is 100.
	p := &gcPacer{max: 400, headroom: 1, set: func(v int) int {
		mu.Lock()
		defer mu.Unlock()
		set = append(set, v)
		return 0
	}}
	p.current.Store(400)
	defer p.stopped.Store(true)
	p.arm()
	testutil.Eventually(t, "the pacer to set 100 after a collection", func() bool {
		runtime.GC()
		mu.Lock()
		defer mu.Unlock()
		return len(set) == 1 && set[0] == 100
	})
	if got := p.current.Load(); got != 100 {
		t.Fatalf("current = %d, want 100", got)
	}
}

// TestIdleTrimmer feeds idleTrimmer's look with the allocation totals and
// free heap of successive periods: it frees once per quiet spell, only
// with enough free memory, and never on the first look or while busy.
func TestIdleTrimmer(t *testing.T) {
	const MiB = 1 << 20
	steps := []struct {
		allocs, free uint64
		want         bool
	}{
		{100 * MiB, 20 * MiB, false},      // first look: no rate yet
		{200 * MiB, 20 * MiB, false},      // busy
		{200 * MiB, 20 * MiB, true},       // quiet, 20 MiB free: trim
		{200*MiB + 1000, 20 * MiB, false}, // still quiet: trimmed already
		{300 * MiB, 20 * MiB, false},      // busy again
		{300*MiB + 1000, 2 * MiB, false},  // quiet, too little free
		{300*MiB + 2000, 5 * MiB, true},   // quiet, enough free now
	}
	freed := 0
	tr := &idleTrimmer{free: func() { freed++ }}
	for i, s := range steps {
		before := freed
		tr.look(s.allocs, s.free)
		if got := freed > before; got != s.want {
			t.Fatalf("step %d (allocs %d, free %d): freed %v, want %v", i, s.allocs, s.free, got, s.want)
		}
	}
}
