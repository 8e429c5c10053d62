package pipe

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog enforces the idle timeout. It runs on a timer (time.AfterFunc),
// not in a goroutine of its own, and never blocks on the copy.
//
// On the buffered path every read and write records progress in
// proxy.last, so the watchdog fires at last+idle and closes the connections
// if nothing moved since: the timeout is exact.
//
// On the splice path progress is recorded only when a ReadFrom call returns:
// at the end of each chunk, or when the watchdog probes the direction. A
// probe sets the read deadline of the direction's source in the past; a
// splice waiting for input returns at once with the count of bytes it moved,
// the direction records them, clears the deadline, acknowledges the probe
// (ack) and resumes. While no progress was recorded for a tick (idle/4) the
// watchdog probes every tick, so that progress is dated within a tick of the
// time it happened; it declares the connection idle only after a probe in
// which every running direction either answered without progress, or has not
// answered any probe for a whole idle window (a direction blocked writing to
// a peer that does not read cannot answer: its read deadline is not looked
// at until the splice pipe is empty).
type watchdog struct {
	p     *proxy
	tick  time.Duration // probe interval
	grace time.Duration // wait for the answers of a probe
	seq   atomic.Uint64 // number of the last probe sent

	mu      sync.Mutex
	t       *time.Timer
	wg      sync.WaitGroup // one count per scheduled or running firing
	stopped bool
	probing bool // a probe was sent: the next firing evaluates it
}

func (w *watchdog) start(p *proxy) {
	w.p = p
	w.tick = max(p.idle/4, time.Microsecond)
	w.grace = min(max(w.tick/4, time.Millisecond), 50*time.Millisecond)
	first := p.idle
	if p.splice {
		first = w.tick
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wg.Add(1)
	w.t = time.AfterFunc(first, w.fire)
}

// stop cancels the timer and waits for a firing in progress to return.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.stopped = true
	if w.t.Stop() {
		w.wg.Done()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// arm schedules the next firing; w.mu must be held.
func (w *watchdog) arm(d time.Duration) {
	w.wg.Add(1)
	w.t.Reset(max(d, 0))
}

func (w *watchdog) fire() {
	defer w.wg.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.p
	if w.stopped || p.aborted.Load() {
		return
	}
	now := p.now()
	last := time.Duration(p.last.Load())
	switch {
	case !p.splice:
		if now-last >= p.idle {
			p.abort(ErrIdle, false)
			return
		}
		w.arm(last + p.idle - now)
	case w.probing:
		w.probing = false
		if now-last >= p.idle && w.quiet(now) {
			p.abort(ErrIdle, false)
			return
		}
		w.arm(w.tick - w.grace)
	case now-last < w.tick:
		// Progress was recorded recently: nothing to learn yet.
		w.arm(last + w.tick - now)
	default:
		w.probe(now)
		w.probing = true
		w.arm(w.grace)
	}
}

// probe asks every running direction to report the bytes it moved.
func (w *watchdog) probe(now time.Duration) {
	prev := w.seq.Load()
	w.seq.Add(1)
	for i := range w.p.dirs {
		d := &w.p.dirs[i]
		if !d.running.Load() {
			continue
		}
		if d.ack.Load() >= prev {
			// All earlier probes were answered: this one is the oldest
			// the direction owes.
			d.probedAt = now
		}
		d.src.SetReadDeadline(aLongTimeAgo)
	}
}

// quiet reports whether, after a probe that found no progress, every
// running direction is known to be inactive.
func (w *watchdog) quiet(now time.Duration) bool {
	seq := w.seq.Load()
	for i := range w.p.dirs {
		d := &w.p.dirs[i]
		if !d.running.Load() || d.ack.Load() >= seq {
			continue
		}
		// No answer: the direction is blocked writing. Count it as
		// inactive once it has owed an answer for a whole idle window.
		if now-d.probedAt < w.p.idle {
			return false
		}
	}
	return true
}
