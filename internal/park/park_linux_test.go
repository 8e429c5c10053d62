package park

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// pair returns the two ends of a TCP connection on 127.0.0.1: the one the
// test parks (accepted) and its peer (dialed).
func pair(tb testing.TB, ln net.Listener) (parked *net.TCPConn, peer *net.TCPConn) {
	tb.Helper()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		d.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close(); a.Close() })
	return a.(*net.TCPConn), d.(*net.TCPConn)
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// result records the calls of one ready function.
type result struct {
	calls atomic.Int32
	err   atomic.Pointer[error]
	done  chan struct{}
}

func newResult() *result { return &result{done: make(chan struct{}, 1)} }

func (r *result) ready(err error) {
	if r.calls.Add(1) == 1 {
		r.err.Store(&err)
	}
	r.done <- struct{}{}
}

// wait waits for ready and returns its argument.
func (r *result) wait(tb testing.TB) error {
	tb.Helper()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		tb.Fatal("ready was not called within 5s")
	}
	return *r.err.Load()
}

func TestReadyOnData(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	r := newResult()
	if _, err := p.Park(c, time.Time{}, r.ready); err != nil {
		t.Fatal(err)
	}
	if n := p.Len(); n != 1 {
		t.Fatalf("Len = %d with one connection parked, want 1", n)
	}
	if _, err := peer.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("ready(%v), want ready(nil)", err)
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len = %d after the wake-up, want 0", n)
	}
	// The runtime's poller still serves the connection: the bytes are
	// there to read.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 3)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "GET" {
		t.Fatalf("read %q, %v after the wake-up", got, err)
	}
	// And it can be parked again (the registration was removed).
	r2 := newResult()
	if _, err := p.Park(c, time.Time{}, r2.ready); err != nil {
		t.Fatalf("second Park: %v", err)
	}
	peer.Write([]byte("x"))
	if err := r2.wait(t); err != nil {
		t.Fatalf("second ready(%v)", err)
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("first ready called %d times", n)
	}
}

func TestReadyOnFIN(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	r := newResult()
	if _, err := p.Park(c, time.Now().Add(time.Minute), r.ready); err != nil {
		t.Fatal(err)
	}
	peer.CloseWrite()
	if err := r.wait(t); err != nil {
		t.Fatalf("ready(%v), want ready(nil)", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after FIN: %d, %v; want EOF", n, err)
	}
}

func TestReadyOnRST(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	r := newResult()
	if _, err := p.Park(c, time.Now().Add(time.Minute), r.ready); err != nil {
		t.Fatal(err)
	}
	peer.SetLinger(0)
	peer.Close()
	if err := r.wait(t); err != nil {
		t.Fatalf("ready(%v), want ready(nil)", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after RST: %v; want ECONNRESET", err)
	}
}

func TestTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	r := newResult()
	deadline := time.Now().Add(150 * time.Millisecond)
	if _, err := p.Park(c, deadline, r.ready); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != ErrTimeout {
		t.Fatalf("ready(%v), want ready(ErrTimeout)", err)
	}
	if now := time.Now(); now.Before(deadline) {
		t.Fatalf("timed out %v before the deadline", deadline.Sub(now))
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len = %d after the timeout", n)
	}
	// Data after the timeout does not call ready again: park a second
	// connection behind it and wait for that one.
	peer.Write([]byte("late"))
	c2, peer2 := pair(t, listen(t))
	r2 := newResult()
	if _, err := p.Park(c2, time.Time{}, r2.ready); err != nil {
		t.Fatal(err)
	}
	peer2.Write([]byte("x"))
	r2.wait(t)
	testutil.Eventually(t, "ready goroutines to end", func() bool { return !readyRunning() })
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("ready called %d times, want 1", n)
	}
}

// TestDeadlinePassed: a deadline already in the past times out at the
// next tick, and readable data before it wins.
func TestDeadlinePassed(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	ln := listen(t)
	c, _ := pair(t, ln)
	r := newResult()
	if _, err := p.Park(c, time.Now().Add(-time.Hour), r.ready); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != ErrTimeout {
		t.Fatalf("ready(%v), want ready(ErrTimeout)", err)
	}
	c2, peer2 := pair(t, ln)
	peer2.Write([]byte("x"))
	// The byte is in c2's receive queue once c2 reads it with MSG_PEEK.
	waitReadable(t, c2)
	r2 := newResult()
	if _, err := p.Park(c2, time.Now().Add(-time.Hour), r2.ready); err != nil {
		t.Fatal(err)
	}
	if err := r2.wait(t); err != nil {
		t.Fatalf("ready(%v) for a readable connection, want ready(nil)", err)
	}
}

// waitReadable waits until c has a byte to read, without taking it.
func waitReadable(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, _ := c.SyscallConn()
	testutil.Eventually(t, "a byte to read", func() bool {
		n := 0
		rc.Control(func(fd uintptr) {
			n, _, _ = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		})
		return n == 1
	})
}

func TestCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	r := newResult()
	tk, err := p.Park(c, time.Now().Add(200*time.Millisecond), r.ready)
	if err != nil {
		t.Fatal(err)
	}
	if !tk.Cancel() {
		t.Fatal("Cancel of a parked connection returned false")
	}
	if tk.Cancel() {
		t.Fatal("second Cancel returned true")
	}
	if (Ticket{}).Cancel() {
		t.Fatal("Cancel of the zero Ticket returned true")
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len = %d after Cancel", n)
	}
	// Neither data nor the deadline calls ready: park the same
	// connection again (its first registration is gone) and wait past the
	// deadline for the second one's wake-up.
	peer.Write([]byte("x"))
	r2 := newResult()
	tk2, err := p.Park(c, time.Time{}, r2.ready)
	if err != nil {
		t.Fatalf("Park after Cancel: %v", err)
	}
	if err := r2.wait(t); err != nil {
		t.Fatal(err)
	}
	if tk2.Cancel() {
		t.Fatal("Cancel after ready returned true")
	}
	c3, _ := pair(t, listen(t))
	r3 := newResult()
	if _, err := p.Park(c3, time.Now().Add(250*time.Millisecond), r3.ready); err != nil {
		t.Fatal(err)
	}
	if err := r3.wait(t); err != ErrTimeout {
		t.Fatalf("ready(%v), want ErrTimeout", err)
	}
	testutil.Eventually(t, "ready goroutines to end", func() bool { return !readyRunning() })
	// The first deadline (200ms) came before the third (250ms), which
	// went to the same loop (they are taken in turn): had the first
	// registration been left, its ready would have run by now.
	if n := r.calls.Load(); n != 0 {
		t.Fatalf("ready called %d times after Cancel returned true", n)
	}
}

// TestCancelRacesReadiness parks connections whose peer writes at once
// while the test cancels them, from two goroutines, and checks that every
// registration ends exactly once: Cancel returned true and ready never
// runs, or Cancel returned false and ready runs once.
func TestCancelRacesReadiness(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	ln := listen(t)
	const workers, conns, rounds = 2, 16, 1500
	deadline := time.Now().Add(5 * time.Second)
	type reg struct {
		cancelled atomic.Bool
		calls     atomic.Int32
	}
	var (
		mu   sync.Mutex
		regs []*reg
		won  [2]atomic.Int64 // by Cancel, by ready
	)
	var wg sync.WaitGroup
	for w := range workers {
		cs := make([]*net.TCPConn, conns)
		ps := make([]*net.TCPConn, conns)
		for i := range cs {
			cs[i], ps[i] = pair(t, ln)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			for i := 0; i < rounds && time.Now().Before(deadline); i++ {
				k := i % conns
				g := &reg{}
				mu.Lock()
				regs = append(regs, g)
				mu.Unlock()
				done := make(chan struct{})
				// Half of the rounds have a deadline that may race too.
				var dl time.Time
				if (i+w)%2 == 0 {
					dl = time.Now()
				}
				tk, err := p.Park(cs[k], dl, func(error) { g.calls.Add(1); close(done) })
				if err != nil {
					t.Error(err)
					return
				}
				ps[k].Write(buf)
				if tk.Cancel() {
					g.cancelled.Store(true)
					won[0].Add(1)
				} else {
					<-done
					won[1].Add(1)
				}
				cs[k].SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(cs[k], buf); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every ready call has been made or is on its way: wait for the
	// goroutines that make them, then check.
	testutil.Eventually(t, "ready goroutines to end", func() bool {
		return !readyRunning()
	})
	for i, g := range regs {
		n := g.calls.Load()
		if g.cancelled.Load() && n != 0 {
			t.Fatalf("registration %d: ready called %d times after Cancel returned true", i, n)
		}
		if !g.cancelled.Load() && n != 1 {
			t.Fatalf("registration %d: ready called %d times, want 1", i, n)
		}
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d at the end", p.Len())
	}
	t.Logf("%d registrations: Cancel won %d, ready won %d", len(regs), won[0].Load(), won[1].Load())
}

// loopRunning reports whether a loop's goroutine runs or is about to
// (a goroutine in deliver that has not yet called run).
func loopRunning() bool {
	return goroutineIn("park.(*loop).run(") || goroutineIn("park.deliver(")
}

// readyRunning reports whether a goroutine started for a ready function
// runs or is about to.
func readyRunning() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
		if bytes.Contains(g, []byte("park.deliver(")) && !bytes.Contains(g, []byte("park.(*loop).run(")) {
			return true
		}
	}
	return false
}

// goroutineIn reports whether a goroutine has fn in its stack.
func goroutineIn(fn string) bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return bytes.Contains(buf[:n], []byte(fn))
}

// TestParkMany parks thousands of connections, then wakes them all, and
// checks that the loops end when nothing is parked.
func TestParkMany(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	ln := listen(t)
	const n = 2000
	cs := make([]*net.TCPConn, n)
	ps := make([]*net.TCPConn, n)
	for i := range cs {
		cs[i], ps[i] = pair(t, ln)
	}
	var woken atomic.Int64
	var bad atomic.Int64
	all := make(chan struct{})
	for i, c := range cs {
		dl := time.Time{}
		if i%2 == 0 {
			dl = time.Now().Add(time.Minute)
		}
		if _, err := p.Park(c, dl, func(err error) {
			if err != nil {
				bad.Add(1)
			}
			if woken.Add(1) == n {
				close(all)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Len(); got != n {
		t.Fatalf("Len = %d, want %d", got, n)
	}
	if !loopRunning() {
		t.Fatal("no loop goroutine runs with connections parked")
	}
	for _, c := range ps {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d connections woken", woken.Load(), n)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d ready calls with an error", bad.Load())
	}
	if got := p.Len(); got != 0 {
		t.Fatalf("Len = %d after waking all", got)
	}
	testutil.Eventually(t, "the loops to end", func() bool {
		return !loopRunning()
	})
}

// TestLoopsEndAfterCancelAndTimeout: a loop whose last connection is
// cancelled or times out ends its goroutine, and starts again for the
// next.
func TestLoopsEndAfterCancelAndTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	ln := listen(t)
	for round := range 3 {
		c, _ := pair(t, ln)
		r := newResult()
		tk, err := p.Park(c, time.Now().Add(100*time.Millisecond), r.ready)
		if err != nil {
			t.Fatal(err)
		}
		if !loopRunning() {
			t.Fatalf("round %d: no loop goroutine with a connection parked", round)
		}
		if round == 1 {
			if !tk.Cancel() {
				t.Fatal("Cancel returned false")
			}
		} else if err := r.wait(t); err != ErrTimeout {
			t.Fatalf("ready(%v), want ErrTimeout", err)
		}
		testutil.Eventually(t, "the loop to end", func() bool {
			return !loopRunning()
		})
	}
}

func TestParkClosed(t *testing.T) {
	p := New()
	c, _ := pair(t, listen(t))
	c.Close()
	tk, err := p.Park(c, time.Time{}, func(error) { t.Error("ready called for a closed connection") })
	if err == nil {
		tk.Cancel()
		t.Fatal("Park of a closed connection returned no error")
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d after a failed Park", p.Len())
	}
}

func TestParkUnsupported(t *testing.T) {
	p := New()
	f, err := os.CreateTemp(t.TempDir(), "park")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = p.Park(f, time.Time{}, func(error) { t.Error("ready called for a file") })
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Park of a regular file: %v, want ErrUnsupported", err)
	}
	c, _ := pair(t, listen(t))
	if _, err := p.Park(c, time.Time{}, nil); err == nil {
		t.Fatal("Park with a nil ready func returned no error")
	}
}

// TestParkUnix parks a Unix socket.
func TestParkUnix(t *testing.T) {
	testutil.CheckLeaks(t)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "unix")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	a, b := mk(fds[0]), mk(fds[1])
	p := New()
	r := newResult()
	if _, err := p.Park(a, time.Time{}, r.ready); err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("x"))
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

// TestReadyNotOnCallersGoroutine: ready runs on a goroutine of its own
// even when the socket is readable at Park (it may run before Park
// returns): a caller holding a lock that ready takes does not deadlock.
func TestReadyNotOnCallersGoroutine(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	c, peer := pair(t, listen(t))
	peer.Write([]byte("x"))
	waitReadable(t, c)
	var mu sync.Mutex
	r := newResult()
	mu.Lock()
	if _, err := p.Park(c, time.Time{}, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.ready(err)
	}); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

// TestWheel moves the loops' clock by hand: deadlines up to and beyond the
// wheel's horizon (wheelSize×Tick) time out at their tick, never before,
// also when the timer comes late by more than a turn of the wheel.
func TestWheel(t *testing.T) {
	testutil.CheckLeaks(t)
	p := New()
	var now atomic.Int64
	now.Store(int64(time.Since(epoch)))
	p.pick()
	for _, l := range p.loops {
		if err := l.init(); err != nil {
			t.Fatal(err)
		}
		l.clock = func() time.Duration { return time.Duration(now.Load()) }
	}
	expire := func(d time.Duration) {
		now.Add(int64(d))
		for _, l := range p.loops {
			l.expire()
		}
	}
	ln := listen(t)
	start := epoch.Add(time.Duration(now.Load()))
	horizon := wheelSize * Tick
	offsets := []time.Duration{50 * time.Second, horizon + 30*time.Second, 2*horizon + 10*time.Second, 7 * horizon}
	rs := make([]*result, len(offsets))
	for i, off := range offsets {
		c, _ := pair(t, ln)
		rs[i] = newResult()
		if _, err := p.Park(c, start.Add(off), rs[i].ready); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Duration(0)
	for i, off := range offsets {
		// Just before the deadline: nothing of i or later has fired.
		expire(off - Tick - elapsed)
		elapsed = off - Tick
		// (expire takes the slots out synchronously; ready runs later.)
		if n := p.Len(); n != len(rs)-i {
			t.Fatalf("%v before deadline %v: %d parked, want %d", Tick, off, n, len(rs)-i)
		}
		// One tick later (the jump may exceed a turn of the wheel).
		expire(2 * Tick)
		elapsed += 2 * Tick
		if n := p.Len(); n != len(rs)-i-1 {
			t.Fatalf("%v after deadline %v: %d parked, want %d", Tick, off, n, len(rs)-i-1)
		}
		if err := rs[i].wait(t); err != ErrTimeout {
			t.Fatalf("deadline %v: ready(%v), want ErrTimeout", off, err)
		}
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d at the end", p.Len())
	}
}
