package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// setGCPercent sets the garbage collector's pacing (-gc-percent and
// -gc-headroom). A proxy's live heap is small (buffers and per-connection
// state) while it allocates per request, so the default GOGC=100 makes it
// collect very often; 400 trades a few MB of peak memory for less CPU per
// request. An explicit GOGC in the environment wins, and a percent of 0
// keeps the runtime's default.
//
// With headroom > 0 the percent is a ceiling rather than a constant: after
// every collection the target becomes headroom bytes of new heap (at least
// 100% of the live heap, at most percent). A busy proxy with a few MB of
// live heap keeps the full percent; a proxy holding many idle connections,
// whose live heap is mostly their state, no longer lets its garbage grow
// to four times that state. With percent 400 and 12 MiB of headroom (the
// default), the full 400% holds up to 3 MiB of live heap, 200% at 6 MiB
// (lbproxy's under a keep-alive load of 64 clients, where it costs one
// more collection every 130 ms, about 1% of a core), and 100% from 12 MiB
// on (9,500 idle keep-alive clients hold about 9 MiB). The percent set last is kept
// until it is off by more than a tenth.
func setGCPercent(percent int, headroom uint64) {
	if _, set := os.LookupEnv("GOGC"); set || percent <= 0 {
		return
	}
	debug.SetGCPercent(percent)
	if headroom > 0 && percent > 100 {
		p := &gcPacer{max: percent, headroom: headroom, set: debug.SetGCPercent}
		p.current.Store(int64(percent))
		p.arm()
	}
}

// gcPacer sets GOGC after each collection from the live heap it left.
// Its method adjust runs on the runtime's cleanup goroutine.
type gcPacer struct {
	max      int
	headroom uint64
	set      func(int) int // debug.SetGCPercent; tests record instead
	current  atomic.Int64  // the percent set last
	stopped  atomic.Bool   // tests stop a pacer; lbproxy's runs for good
	sample   [1]metrics.Sample
}

// gcSentinel is what the pacer watches to learn that a collection ran: a
// new one per cycle, unreachable as soon as arm returns. It holds a
// pointer so that the allocator does not combine it with other small
// objects, which would keep it alive.
type gcSentinel struct {
	_ *byte
	_ [8]byte
}

// arm asks to be called once the next collection has run.
func (p *gcPacer) arm() {
	runtime.AddCleanup(new(gcSentinel), (*gcPacer).collected, p)
}

// collected runs after a collection: it adjusts GOGC and waits for the
// next one.
func (p *gcPacer) collected() {
	if p.stopped.Load() {
		return
	}
	p.sample[0].Name = "/gc/heap/live:bytes"
	metrics.Read(p.sample[:])
	if p.sample[0].Value.Kind() == metrics.KindUint64 {
		p.adjust(p.sample[0].Value.Uint64())
	}
	p.arm()
}

// adjust sets the percent for a live heap of live bytes, when it differs
// from the current one by more than a tenth (small moves are not worth
// recomputing the runtime's pacing for).
func (p *gcPacer) adjust(live uint64) {
	want := gcPercentFor(live, p.headroom, p.max)
	cur := int(p.current.Load())
	if d := want - cur; d*10 > cur || -d*10 > cur {
		p.set(want)
		p.current.Store(int64(want))
	}
}

// gcPercentFor is the GOGC that gives headroom bytes of new heap above a
// live heap of live bytes, within [100, max].
func gcPercentFor(live, headroom uint64, max int) int {
	if live == 0 {
		return max
	}
	pct := float64(headroom) * 100 / float64(live) // no overflow for any headroom
	switch {
	case pct >= float64(max):
		return max
	case pct < 100:
		return 100
	}
	return int(pct)
}

// idleTrim returns the heap's free memory to the operating system once
// the proxy has gone quiet (-idle-trim). The runtime's scavenger keeps
// free heap up to about a tenth over the heap goal (the live heap plus
// the pacer's headroom) for a program that will allocate again soon; a
// proxy whose clients went idle holds that memory, up to the headroom per
// process, for as long as they stay. Every period, when less than
// idleQuietBytes were allocated since the last look and at least
// idleTrimMin bytes of the heap are free and not returned yet, it runs
// debug.FreeOSMemory (one collection, cheap on an idle heap), once per
// quiet spell. It returns when ctx is done.
func idleTrim(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := &idleTrimmer{free: debug.FreeOSMemory}
	t.samples[0].Name = "/gc/heap/allocs:bytes"
	t.samples[1].Name = "/memory/classes/heap/free:bytes"
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(t.samples[:])
		t.look(t.samples[0].Value.Uint64(), t.samples[1].Value.Uint64())
	}
}

const (
	idleQuietBytes = 256 << 10 // allocated in a period by a quiet proxy (health checks, timers) at most
	idleTrimMin    = 4 << 20   // free heap worth a trim
)

// idleTrimmer decides when idleTrim frees memory.
type idleTrimmer struct {
	free    func() // debug.FreeOSMemory; tests record instead
	samples [2]metrics.Sample
	allocs  uint64 // total allocated at the last look
	looked  bool
	trimmed bool // freed since the proxy was last busy
}

// look takes the total bytes allocated so far and the free, unreleased
// heap bytes, and frees memory when the proxy went quiet.
func (t *idleTrimmer) look(allocs, free uint64) {
	quiet := t.looked && allocs-t.allocs < idleQuietBytes
	t.allocs, t.looked = allocs, true
	if !quiet {
		t.trimmed = false
		return
	}
	if !t.trimmed && free >= idleTrimMin {
		t.free()
		t.trimmed = true
	}
}
