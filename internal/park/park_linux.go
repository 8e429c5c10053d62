package park

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/internal/epoll"
	"github.com/lbkit/lbkit/internal/gopool"
)

const (
	// chunkSize is the number of registration slots a loop allocates at
	// a time; slots never move, so Park and Cancel index them in O(1).
	chunkSize = 256
	// wheelSize is the number of buckets of a loop's timing wheel, each
	// Tick wide: deadlines up to wheelSize×Tick ahead (102.4 s) are in
	// the bucket of their tick; later ones wait in a bucket that is
	// scanned once per turn of the wheel until their tick comes.
	wheelSize = 1024
	// events is the size of a loop's harvest.
	events = 128
	none   = -1 // no slot
	// keepCap is the most entries a scratch slice keeps between uses:
	// what a burst of wake-ups or timeouts grows beyond it is dropped.
	keepCap = 1024
)

// Park registers c and returns at once; see the package documentation for
// the contract. Exactly one of these happens later, each at most once,
// each calling ready on a new goroutine (never on the caller's, never
// while a lock of p is held):
//
//   - c's socket becomes readable or hung up (data, FIN, RST, error):
//     ready(nil);
//   - deadline passes first (zero: none): ready(ErrTimeout), within
//     about Tick after the deadline;
//   - the returned Ticket's Cancel wins: ready is not called at all
//     (Cancel returned true).
//
// Park does not read from, write to or close c; c stays owned by the
// caller, who must not use it until ready runs or Cancel returned true,
// and who must call Cancel before closing c while it is parked (the
// registration would otherwise outlive its descriptor). Bytes already
// read from c into a buffer above it (bufio, TLS) are not seen: check
// them before parking.
//
// c must be a *net.TCPConn or *net.UnixConn, or anything whose
// SyscallConn gives a descriptor epoll accepts (a socket); otherwise Park
// returns an error wrapping ErrUnsupported and the caller falls back to a
// blocking read on its goroutine. A closed c is an error too. ready must
// not be nil.
func (p *Parker) Park(c syscall.Conn, deadline time.Time, ready func(error)) (Ticket, error) {
	if ready == nil {
		return Ticket{}, errNilReady
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return Ticket{}, fmt.Errorf("park: %w: %w", ErrUnsupported, err)
	}
	return p.ParkRaw(rc, deadline, ready)
}

var errNilReady = errors.New("park: nil ready func")

// ParkRaw is Park for the raw connection of c (c.SyscallConn()), which a
// caller that parks a connection often can keep: (*net.TCPConn).SyscallConn
// allocates a small value each call, ParkRaw does not allocate.
func (p *Parker) ParkRaw(rc syscall.RawConn, deadline time.Time, ready func(error)) (Ticket, error) {
	if ready == nil {
		return Ticket{}, errNilReady
	}
	l := p.pick()
	if err := l.init(); err != nil {
		return Ticket{}, fmt.Errorf("park: %w: %w", ErrUnsupported, err)
	}
	at := int64(0)
	if !deadline.IsZero() {
		at = ceilTick(deadline.Sub(epoch))
	}
	l.mu.Lock()
	if l.broken != nil {
		err := l.broken
		l.mu.Unlock()
		return Ticket{}, err
	}
	// The registration happens inside Control, which holds c's descriptor
	// open; the arguments go through the loop (under l.mu) so that the
	// callback is a method value made once, and Park does not allocate.
	l.argAt, l.argReady = at, ready
	l.resErr = nil
	l.resIdx = none
	cerr := rc.Control(l.addFunc)
	l.argReady = nil
	idx, aerr := l.resIdx, l.resErr
	var t Ticket
	if cerr == nil && aerr == nil {
		t = Ticket{l: l, idx: uint32(idx), gen: l.slot(idx).gen}
		if !l.running {
			l.running = true
			start(l)
		}
	}
	l.mu.Unlock()
	switch {
	case cerr != nil:
		return Ticket{}, fmt.Errorf("park: %w", cerr)
	case aerr != nil:
		return Ticket{}, aerr
	}
	return t, nil
}

// Cancel unregisters the connection if it is still parked, and reports
// whether it did: true means that ready was not called and never will be,
// and the connection is the caller's again; false means that ready was or
// will be called (or the Ticket named nothing). Cancel is O(1) and safe
// for concurrent use, also with a wake-up or timeout in progress, and
// later calls return false.
func (t Ticket) Cancel() bool {
	l := t.l
	if l == nil {
		return false
	}
	l.mu.Lock()
	if int(t.idx) >= len(l.chunks)*chunkSize {
		l.mu.Unlock()
		return false
	}
	s := l.slot(int32(t.idx))
	if s.gen != t.gen || s.ready == nil {
		l.mu.Unlock()
		return false
	}
	l.ep.Ctl(syscall.EPOLL_CTL_DEL, int(s.fd), 0, 0, 0)
	l.release(int32(t.idx))
	wake := l.count.Load() == 0 && l.running
	l.mu.Unlock()
	if wake {
		l.ep.Wake() // the loop's goroutine ends
	}
	return true
}

// epoch is the origin of the loops' ticks, on the monotonic clock.
var epoch = time.Now()

// ceilTick returns the first tick at or after d (since epoch), and at
// least 1: tick 0 stands for no deadline.
func ceilTick(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	return int64((d + Tick - 1) / Tick)
}

// pick returns the loop for a new registration: one loop per GOMAXPROCS
// at the time of first use, taken in turn.
func (p *Parker) pick() *loop {
	p.once.Do(func() {
		p.loops = make([]*loop, runtime.GOMAXPROCS(0))
		for i := range p.loops {
			p.loops[i] = &loop{}
		}
		p.made.Store(true)
	})
	return p.loops[p.next.Add(1)%uint32(len(p.loops))]
}

// slot is one registration. Free slots form a list through next; parked
// ones are in a bucket of the wheel (when they have a deadline) through
// prev and next.
type slot struct {
	ready      func(error) // nil: the slot is free
	fd         int32
	gen        uint32 // changes each time the slot is freed; never 0
	at         int64  // deadline tick; 0: none
	prev, next int32
	bucket     int32 // of the wheel, when at is set
}

// loop is one epoll instance, the goroutine that waits on it while it has
// connections parked, and a timing wheel for their deadlines.
type loop struct {
	initOnce sync.Once
	initErr  error
	ep       *epoll.Poller
	// Method values made once, so that passing them does not allocate.
	cycleFunc func(uintptr) bool
	addFunc   func(uintptr)
	timer     *time.Timer
	// clock returns the time since epoch; nil means the real clock.
	// Tests set it to move the wheel.
	clock func() time.Duration

	count atomic.Int64 // parked slots; written under mu

	mu      sync.Mutex
	running bool  // the loop's goroutine runs
	broken  error // epoll failed: the loop takes no registration
	chunks  []*[chunkSize]slot
	free    int32 // head of the free list
	// Park's arguments and results around rc.Control (see Park).
	argAt    int64
	argReady func(error)
	resIdx   int32
	resErr   error
	// Timing wheel: heads of the buckets' lists; tick is the last tick
	// served; timed counts the slots with a deadline; armed tells
	// whether the timer is set.
	wheel [wheelSize]int32
	tick  int64
	timed int
	armed bool
	// expired collects the slots the timer ends; under mu.
	expired []func(error)

	// Owned by the loop's goroutine.
	events []syscall.EpollEvent
	woken  []func(error)
}

func (l *loop) init() error {
	l.initOnce.Do(func() {
		ep, err := epoll.New()
		if err != nil {
			l.initErr = err
			return
		}
		l.ep = ep
		l.cycleFunc = l.cycle
		l.addFunc = l.add
		l.free = none
		for i := range l.wheel {
			l.wheel[i] = none
		}
		l.events = make([]syscall.EpollEvent, events)
		l.timer = time.AfterFunc(time.Hour, l.expire)
		l.timer.Stop()
	})
	return l.initErr
}

// since returns the time since epoch.
func (l *loop) since() time.Duration {
	if l.clock != nil {
		return l.clock()
	}
	return time.Since(epoch)
}

func (l *loop) slot(i int32) *slot { return &l.chunks[i/chunkSize][i%chunkSize] }

// add registers fd with the arguments in l.argAt and l.argReady, and sets
// l.resIdx or l.resErr. It runs inside rc.Control, under l.mu.
func (l *loop) add(fd uintptr) {
	if l.free == none {
		c := new([chunkSize]slot)
		base := int32(len(l.chunks) * chunkSize)
		for i := range c {
			c[i].gen = 1
			c[i].next = base + int32(i) + 1
		}
		c[chunkSize-1].next = none
		l.chunks = append(l.chunks, c)
		l.free = base
	}
	idx := l.free
	s := l.slot(idx)
	err := l.ep.Ctl(syscall.EPOLL_CTL_ADD, int(fd),
		syscall.EPOLLIN|syscall.EPOLLRDHUP|epoll.OneShot, idx, int32(s.gen))
	if err != nil {
		if err == syscall.EPERM {
			// Not pollable (a regular file, a directory).
			l.resErr = fmt.Errorf("park: %w: %w", ErrUnsupported, os.NewSyscallError("epoll_ctl", err))
		} else {
			l.resErr = fmt.Errorf("park: %w", os.NewSyscallError("epoll_ctl", err))
		}
		return
	}
	l.free = s.next
	s.ready, s.fd, s.at = l.argReady, int32(fd), l.argAt
	s.prev, s.next = none, none
	if s.at != 0 {
		l.schedule(idx)
	}
	l.count.Add(1)
	l.resIdx = idx
}

// schedule puts slot idx, which has a deadline, into the wheel, and sets
// the timer if it is not set. It runs under l.mu.
func (l *loop) schedule(idx int32) {
	if !l.armed {
		// The wheel has been idle: it starts at the current tick.
		l.tick = int64(l.since() / Tick)
		l.armed = true
		l.timer.Reset(l.untilNextTick())
	}
	s := l.slot(idx)
	b := int32(max(s.at, l.tick+1) % wheelSize)
	s.bucket = b
	s.prev, s.next = none, l.wheel[b]
	if s.next != none {
		l.slot(s.next).prev = idx
	}
	l.wheel[b] = idx
	l.timed++
}

// untilNextTick returns the time left until the tick after l.tick.
func (l *loop) untilNextTick() time.Duration {
	return max(time.Duration(l.tick+1)*Tick-l.since(), time.Millisecond)
}

// release takes slot idx, which is parked, out of the wheel and frees it.
// It runs under l.mu. The caller has removed its descriptor from epoll.
func (l *loop) release(idx int32) {
	s := l.slot(idx)
	if s.at != 0 {
		if s.prev != none {
			l.slot(s.prev).next = s.next
		} else {
			l.wheel[s.bucket] = s.next
		}
		if s.next != none {
			l.slot(s.next).prev = s.prev
		}
		l.timed--
	}
	s.ready = nil
	s.at = 0
	s.gen++
	if s.gen == 0 {
		s.gen = 1
	}
	s.prev = none
	s.next = l.free
	l.free = idx
	l.count.Add(-1)
}

// expire is the timer's function: it serves the ticks that have passed,
// ending the slots whose deadline came, and sets the timer again while
// slots with a deadline remain.
func (l *loop) expire() {
	l.mu.Lock()
	now := int64(l.since() / Tick)
	// Every bucket is looked at once at most: after a long delay, one
	// turn of the wheel finds every deadline that passed.
	for t, end := l.tick+1, min(now, l.tick+wheelSize); t <= end; t++ {
		b := int32(t % wheelSize)
		for idx := l.wheel[b]; idx != none; {
			s := l.slot(idx)
			next := s.next
			if s.at <= now {
				l.ep.Ctl(syscall.EPOLL_CTL_DEL, int(s.fd), 0, 0, 0)
				l.expired = append(l.expired, s.ready)
				l.release(idx)
			}
			idx = next
		}
	}
	l.tick = max(l.tick, now)
	if l.timed > 0 {
		l.timer.Reset(l.untilNextTick())
	} else {
		l.armed = false
	}
	wake := l.count.Load() == 0 && l.running
	var expired []func(error)
	if len(l.expired) > 0 {
		expired = l.expired
		l.expired = nil
	}
	l.mu.Unlock()
	if wake {
		l.ep.Wake() // the loop's goroutine ends
	}
	if expired != nil {
		handOff(expired, ErrTimeout)
		clear(expired)
		l.mu.Lock()
		if l.expired == nil && cap(expired) <= keepCap {
			l.expired = expired[:0]
		}
		l.mu.Unlock()
	}
}

// start starts the goroutine of l; see handOff.
func start(l *loop) {
	handoff.mu.Lock()
	handoff.q = append(handoff.q, call{loop: l})
	handoff.mu.Unlock()
	go deliver()
}

// run is the loop's goroutine: one epoll.Poller.Run call, which waits for
// the epoll descriptor through the runtime's poller (see package epoll).
func (l *loop) run() {
	if err := l.ep.Run(l.cycleFunc); err != nil {
		// The epoll descriptor is never closed or given a deadline, so
		// this does not happen.
		l.fail(fmt.Errorf("park: waiting for events: %w", err))
	}
}

// cycle harvests the ready events without blocking and wakes their slots.
// It returns false to wait for the next events, and true, which ends the
// goroutine, once the loop has nothing parked. Waiting right after a
// harvest that did not fill the buffer is safe: the registrations are
// one-shot, so the harvest emptied the ready list (see package epoll).
func (l *loop) cycle(uintptr) bool {
	for {
		n, err := epoll.Wait(l.ep.Fd, l.events)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// A bug (EBADF, EFAULT, EINVAL): the loop cannot go on.
			l.fail(fmt.Errorf("park: %w", os.NewSyscallError("epoll_pwait", err)))
			return true
		}
		wake := false
		l.mu.Lock()
		for i := range l.events[:n] {
			ev := &l.events[i]
			if l.ep.IsWake(ev) {
				wake = true
				continue
			}
			idx := ev.Fd
			if idx < 0 || int(idx) >= len(l.chunks)*chunkSize {
				continue
			}
			s := l.slot(idx)
			if s.ready == nil || s.gen != uint32(ev.Pad) {
				continue // cancelled or timed out since
			}
			l.ep.Ctl(syscall.EPOLL_CTL_DEL, int(s.fd), 0, 0, 0)
			l.woken = append(l.woken, s.ready)
			l.release(idx)
		}
		done := n < len(l.events) && l.count.Load() == 0
		if done {
			l.running = false
		}
		l.mu.Unlock()
		if wake {
			l.ep.ResetWake()
		}
		if len(l.woken) > 0 {
			handOff(l.woken, nil)
			clear(l.woken)
			l.woken = l.woken[:0]
		}
		if n == len(l.events) {
			continue
		}
		return done
	}
}

// fail stops the loop for good after an error of epoll itself: every
// parked connection is woken (ready(nil): the caller's read then waits on
// its own goroutine, as without a Parker) and Park refuses the loop's
// registrations from now on, with an error wrapping ErrUnsupported.
func (l *loop) fail(err error) {
	l.mu.Lock()
	l.broken = fmt.Errorf("%w: %w", ErrUnsupported, err)
	l.running = false
	var woken []func(error)
	for ci, c := range l.chunks {
		for i := range c {
			if s := &c[i]; s.ready != nil {
				l.ep.Ctl(syscall.EPOLL_CTL_DEL, int(s.fd), 0, 0, 0)
				woken = append(woken, s.ready)
				l.release(int32(ci*chunkSize + i))
			}
		}
	}
	l.mu.Unlock()
	handOff(woken, nil)
}

// handOff calls each of fns with err, each on a goroutine of its own: a
// worker of internal/gopool, whose stack earlier connections have grown to
// what serving one takes. The workers take their function from a shared
// stack rather than from a closure, which would cost an allocation per
// call.
func handOff(fns []func(error), err error) {
	if len(fns) == 0 {
		return
	}
	handoff.mu.Lock()
	for _, f := range fns {
		handoff.q = append(handoff.q, call{ready: f, err: err})
	}
	handoff.mu.Unlock()
	for range fns {
		gopool.Go(delivery{})
	}
}

// delivery is the gopool.Task of handOff: one deliver call.
type delivery struct{}

func (delivery) Run() { deliver() }

// call is a ready function and its argument, or a loop to run, waiting
// for a goroutine.
type call struct {
	ready func(error)
	err   error
	loop  *loop
}

// handoff holds the calls handOff made and their goroutines have not
// taken yet: as many as those goroutines, so that each finds one.
var handoff struct {
	mu sync.Mutex
	q  []call
}

// deliver is the goroutine of one ready call or of a loop.
func deliver() {
	handoff.mu.Lock()
	n := len(handoff.q) - 1
	c := handoff.q[n]
	handoff.q[n] = call{}
	handoff.q = handoff.q[:n]
	if n == 0 && cap(handoff.q) > keepCap {
		// Drop what a burst of wake-ups grew.
		handoff.q = nil
	}
	handoff.mu.Unlock()
	if c.loop != nil {
		c.loop.run()
		return
	}
	c.ready(c.err)
}
