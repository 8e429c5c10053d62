package pipe

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/lbkit/lbkit/internal/epoll"
)

// The event-loop path: see "Copy paths" in the package documentation.

const (
	epollET = epoll.ET
	// loopBudget is the most reads one direction makes in a row before
	// the loop serves other sessions; it comes back to it afterwards.
	loopBudget = 16
)

// canLoop reports whether the event loop can carry the copy between c and
// s: both are plain TCP connections.
func canLoop(c, s net.Conn) bool {
	_, ok1 := c.(*net.TCPConn)
	_, ok2 := s.(*net.TCPConn)
	return ok1 && ok2 && !loopDisabled
}

// MayLoop reports whether a session whose client side is c can go onto
// an event loop, if its server side is a plain TCP connection too: c is a
// plain *net.TCPConn and the loops are on.
func MayLoop(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok && !loopDisabled
}

// loopDisabled turns the event loop off for the whole process
// (LBKIT_PIPE=goroutines in the environment).
var loopDisabled = os.Getenv("LBKIT_PIPE") == "goroutines"

var (
	loopsOnce sync.Once
	loops     []*loop
	loopNext  atomic.Uint32
)

// pickLoop returns the loop for a new session: one loop per GOMAXPROCS at
// the time of first use, taken in turn.
func pickLoop() (*loop, error) {
	loopsOnce.Do(func() {
		loops = make([]*loop, runtime.GOMAXPROCS(0))
		for i := range loops {
			loops[i] = &loop{epfd: -1, evfd: -1}
		}
	})
	return loops[loopNext.Add(1)%uint32(len(loops))], nil
}

// epoch is the origin of the loops' liveness timestamps, read on the
// monotonic clock.
var epoch = time.Now()

// Stalled reports an event loop that has had an event pending for longer
// than d without serving it, the mark of a loop stuck in a system call or
// a bug: its sessions no longer move. It returns an error naming the loop,
// or nil when every loop serves its events (loops without sessions are
// not running and have nothing to serve).
//
// The pending event is Stalled's own: each call wakes every running loop
// that served the previous wake (one write to its eventfd), so a loop that
// stops at time t is reported by the first call made later than d after
// the first wake it missed. Call it every second or few; it costs a lock
// and a system call per running loop, and the loops one wake-up each. It
// is safe for concurrent use.
func Stalled(d time.Duration) error {
	pickLoop() // makes the loops, without starting them
	now := time.Since(epoch)
	for i, l := range loops {
		if err := l.stalled(now, d); err != nil {
			return fmt.Errorf("pipe: event loop %d of %d: %w", i+1, len(loops), err)
		}
	}
	return nil
}

// stalled is Stalled for one loop at now (since epoch): it reports a wake
// older than d that the loop has not served, or wakes the loop again.
func (l *loop) stalled(now, d time.Duration) error {
	l.mu.Lock()
	running := l.running
	l.mu.Unlock()
	if !running {
		l.poked.Store(0)
		return nil
	}
	if p := l.poked.Load(); p != 0 && l.cycled.Load() < p {
		if late := now - time.Duration(p); late > d {
			return fmt.Errorf("events pending for %v", late.Round(time.Millisecond))
		}
		return nil
	}
	l.poked.Store(int64(now))
	l.wake()
	return nil
}

// wake makes the loop's eventfd readable, which makes the loop cycle.
func (l *loop) wake() { l.ep.Wake() }

// loop is one event loop: an epoll instance, edge-triggered, and the
// goroutine that waits on it, which runs while the loop has sessions.
type loop struct {
	initOnce  sync.Once
	initErr   error
	ep        *epoll.Poller // epfd and evfd, watched by the runtime's poller
	epfd      int
	evfd      int      // eventfd that wakes the loop for aborts
	file      *os.File // epfd, kept open for the life of the process
	cycleFunc func(uintptr) bool
	// wait harvests events; nil means epollWait. Tests set it to make the
	// harvest fail.
	wait func(epfd int, events []syscall.EpollEvent) (int, error)

	mu       sync.Mutex
	sessions map[int32]*session // by descriptor, two per session
	aborts   []*session
	running  bool
	// broken is the error that stopped the loop for good. The loop then
	// takes no new session: their copies run in goroutines.
	broken error

	// Owned by the loop goroutine.
	buf    []byte
	events []syscall.EpollEvent
	again  []*session // sessions stopped by the budget, served next round
	spare  []*session
	woken  []*session

	// Liveness, in nanoseconds since epoch: cycled is when the loop last
	// served a harvest, poked when Stalled last woke it (0: no wake
	// outstanding).
	cycled, poked atomic.Int64
}

func (l *loop) init() error {
	l.initOnce.Do(func() {
		ep, err := epoll.New()
		if err != nil {
			l.initErr = err
			return
		}
		l.ep, l.file, l.evfd = ep, ep.File, ep.WakeFd
		l.cycleFunc = l.cycle
		l.epfd = ep.Fd
		l.sessions = make(map[int32]*session)
		l.buf = make([]byte, bufSize)
		l.events = make([]syscall.EpollEvent, 128)
	})
	return l.initErr
}

// add registers s with the loop and starts the loop's goroutine if it is
// not running.
func (l *loop) add(s *session) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	for i, fd := range s.fd {
		l.sessions[int32(fd)] = s
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			for _, f := range s.fd[:i+1] {
				delete(l.sessions, int32(f))
			}
			if i == 1 {
				syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, s.fd[0], nil)
			}
			return os.NewSyscallError("epoll_ctl", err)
		}
	}
	if !l.running {
		l.running = true
		go l.run()
	}
	return nil
}

// abort asks the loop to end s at once.
func (l *loop) abort(s *session, reset bool) {
	l.mu.Lock()
	s.abortReset = reset
	l.aborts = append(l.aborts, s)
	l.mu.Unlock()
	l.wake()
}

// failed returns the error that stopped the loop for good, or nil.
func (l *loop) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken
}

// run is the loop's goroutine. It waits for the epoll descriptor through
// the runtime's own poller, like any network read, so that a loop waiting
// for events is a parked goroutine, not a thread blocked in a system call
// (which the scheduler would have to replace). The whole life of the
// goroutine is one RawConn.Read call (epoll.Poller.Run): see cycle.
func (l *loop) run() {
	if err := l.ep.Run(l.cycleFunc); err != nil {
		// The epoll descriptor is never closed or given a deadline, so
		// this does not happen; if it does, the sessions end with the
		// error rather than the process.
		l.fail(fmt.Errorf("pipe: event loop: waiting for events: %w", err))
	}
}

// fail stops the loop for good after an error of epoll itself: it ends
// every session with err (the Proxy calls return it) and resets their
// connections, and makes the loop refuse new sessions, which then copy in
// goroutines. It runs on the loop goroutine, which owns the sessions.
func (l *loop) fail(err error) {
	l.mu.Lock()
	l.broken = err
	l.running = false
	ended := make([]*session, 0, len(l.sessions)/2+len(l.aborts))
	for _, s := range l.sessions {
		ended = append(ended, s)
	}
	ended = append(ended, l.aborts...)
	l.aborts = nil
	l.mu.Unlock()
	for _, s := range ended {
		s.end(err, true) // once per session: end does nothing the second time
	}
	for _, s := range l.again {
		s.end(err, true)
	}
	clear(l.again)
	l.again = l.again[:0]
}

// cycle harvests the ready events without blocking and serves them. It
// returns false to wait for the next events, and true, which ends the
// goroutine, once the loop has no session left.
//
// Waiting right after a harvest is safe: descriptors are registered
// edge-triggered, so a harvest that did not fill the event buffer emptied
// the ready list, and the next event makes the epoll descriptor readable
// again, which the runtime's poller reports. A new RawConn.Read call would
// forget an edge that came before it; that is why the goroutine makes only
// one.
func (l *loop) cycle(uintptr) bool {
	for {
		var n int
		var err error
		if l.wait != nil {
			n, err = l.wait(l.epfd, l.events)
		} else {
			n, err = epollWait(l.epfd, l.events)
		}
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// A bug (EBADF, EFAULT, EINVAL): the loop cannot go on.
			l.fail(fmt.Errorf("pipe: event loop: %w", os.NewSyscallError("epoll_pwait", err)))
			return true
		}
		l.serve(n)
		if n == len(l.events) {
			continue
		}
		if len(l.again) > 0 {
			runtime.Gosched()
			continue
		}
		l.mu.Lock()
		if len(l.sessions) == 0 && len(l.aborts) == 0 {
			l.running = false
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		return false
	}
}

// serve handles n harvested events, pending aborts, and the sessions left
// over by the previous round.
func (l *loop) serve(n int) {
	now := time.Now()
	l.cycled.Store(int64(now.Sub(epoch)))
	l.mu.Lock()
	aborts := len(l.aborts) > 0
	wake := false
	l.woken = l.woken[:0]
	for _, ev := range l.events[:n] {
		if int(ev.Fd) == l.evfd {
			wake = true
			continue
		}
		s := l.sessions[ev.Fd]
		if s == nil {
			continue // the session ended in this batch
		}
		s.mark(ev.Fd, ev.Events)
		if !s.woken {
			s.woken = true
			l.woken = append(l.woken, s)
		}
	}
	var ab []*session
	if aborts {
		ab, l.aborts = l.aborts, nil
	}
	l.mu.Unlock()
	if wake {
		l.ep.ResetWake() // reset the counter
	}
	if aborts {
		for _, s := range ab {
			s.end(nil, s.abortReset)
		}
	}
	again := l.again
	l.again = l.spare[:0]
	for _, s := range again {
		s.queued = false
		if !s.woken {
			s.woken = true
			l.woken = append(l.woken, s)
		}
	}
	for _, s := range l.woken {
		s.woken = false
		s.serve(now)
	}
	clear(again)
	l.spare = again[:0]
}

// session is one proxied connection pair on a loop. Its fields are owned by
// the loop goroutine, except those written under loop.mu.
type session struct {
	l  *loop
	p  *proxy
	fd [2]int // client, server (duplicates owned by the session)
	// in, out: the descriptor may be readable, writable (an edge was seen
	// and no read or write has since returned EAGAIN). hup: a hang-up or
	// error is pending on it, so it is read until EOF or an error even
	// after a short read.
	in, out, hup [2]bool
	half         [2]half // by direction: 0 client→server, 1 server→client
	ended        bool
	woken        bool
	queued       bool
	abortReset   bool // under loop.mu
}

// half is the state of one direction of a session.
type half struct {
	pend *[]byte // bytes read and not yet written: (*pend)[off:n]
	off  int
	n    int
	eof  bool // the source reached EOF
	shut bool // the destination's write side is shut down
}

func (s *session) mark(fd int32, ev uint32) {
	k := 0
	if int(fd) == s.fd[1] {
		k = 1
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		s.in[k] = true
	}
	if ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		s.hup[k] = true
	}
	if ev&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		s.out[k] = true
	}
}

// serve moves what it can in both directions.
func (s *session) serve(now time.Time) {
	if s.ended {
		return
	}
	moved0, more0 := s.move(0)
	if s.ended {
		return
	}
	moved1, more1 := s.move(1)
	if s.ended {
		return
	}
	if moved0 || moved1 {
		s.p.last.Store(int64(now.Sub(s.p.start)))
	}
	if s.half[0].shut && s.half[1].shut {
		s.end(nil, false)
		return
	}
	if (more0 || more1) && !s.queued {
		s.queued = true
		s.l.again = append(s.l.again, s)
	}
}

// move copies direction i as far as the descriptors allow, reading at most
// loopBudget times. It reports whether bytes moved, and whether it stopped
// for the budget with input left.
func (s *session) move(i int) (moved, more bool) {
	h := &s.half[i]
	src, dst := s.fd[i], s.fd[1-i]
	d := &s.p.dirs[i]
	for reads := 0; ; {
		if h.pend != nil {
			if !s.out[1-i] {
				return moved, false
			}
			m, err := write(dst, (*h.pend)[h.off:h.n])
			if m > 0 {
				h.off += m
				d.wrote(int64(m))
				moved = true
			}
			if err == syscall.EAGAIN || (err == nil && h.off < h.n) {
				s.out[1-i] = false
				return moved, false
			}
			if err != nil {
				s.fail(i, "write", err)
				return moved, false
			}
			bufPool.Put(h.pend)
			h.pend = nil
		}
		if h.eof {
			if !h.shut {
				h.shut = true
				if s.half[1-i].shut {
					// Both sources are at EOF: closing both sockets,
					// which end does at once, sends the FIN that a
					// shutdown would.
					return moved, false
				}
				if err := syscall.Shutdown(dst, syscall.SHUT_WR); err != nil {
					// The peer cannot be told about the EOF.
					s.end(nil, false)
				}
			}
			return moved, false
		}
		if !s.in[i] {
			return moved, false
		}
		if reads == loopBudget {
			return moved, true
		}
		reads++
		buf := s.l.buf
		n, err := read(src, buf)
		switch {
		case err == syscall.EAGAIN:
			s.in[i] = false
			s.hup[i] = false
			return moved, false
		case err != nil:
			s.fail(i, "read", err)
			return moved, false
		case n == 0:
			h.eof = true
			continue
		}
		moved = true
		if n < len(buf) && !s.hup[i] {
			// A short read drained the socket: the next byte, FIN or
			// error raises a new edge.
			s.in[i] = false
		}
		m := 0
		if s.out[1-i] {
			m, err = write(dst, buf[:n])
			d.wrote(int64(m))
			if err != nil && err != syscall.EAGAIN {
				s.fail(i, "write", err)
				return moved, false
			}
		}
		if m < n {
			s.out[1-i] = false
			h.pend = bufPool.Get().(*[]byte)
			h.off, h.n = 0, copy(*h.pend, buf[m:n])
		}
	}
}

// read and write are read(2) and write(2) without the scheduler's
// system-call bookkeeping (entersyscall): the descriptors are non-blocking,
// so the calls return promptly, and a P caught in a slow loopback write
// (which runs the receiver's network stack inline) is not handed to another
// thread, which would cost two context switches.
func read(fd int, b []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if errno != syscall.EINTR {
			if errno != 0 {
				return 0, errno
			}
			return int(n), nil
		}
	}
}

func write(fd int, b []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if errno != syscall.EINTR {
			if errno != 0 {
				return 0, errno
			}
			return int(n), nil
		}
	}
}

// epollWait harvests ready events without blocking.
func epollWait(epfd int, events []syscall.EpollEvent) (int, error) {
	return epoll.Wait(epfd, events)
}

// fail ends the session after a read or write error in direction i, with
// a reset.
func (s *session) fail(i int, op string, err error) {
	s.end(&Error{Dir: i, Op: op, Err: os.NewSyscallError(op, err)}, true)
}

// end closes both descriptors, with a reset when reset is set, records err
// if it is the first error, and finishes the copy (which calls Start's done
// function). It runs on the loop goroutine and does nothing the second
// time.
func (s *session) end(err error, reset bool) {
	if s.ended {
		return
	}
	s.ended = true
	p := s.p
	p.mu.Lock()
	if !p.aborted.Load() && p.err == nil {
		p.err = err
	}
	p.finished = true
	p.mu.Unlock()
	s.l.mu.Lock()
	delete(s.l.sessions, int32(s.fd[0]))
	delete(s.l.sessions, int32(s.fd[1]))
	s.l.mu.Unlock()
	for i := range s.half {
		if h := &s.half[i]; h.pend != nil {
			bufPool.Put(h.pend)
			h.pend = nil
		}
	}
	for _, fd := range s.fd {
		if reset {
			syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		}
		syscall.Close(fd) // also leaves the epoll set: no other descriptor refers to the socket
	}
	p.finish()
}

// dupConn returns a duplicate of c's descriptor (close-on-exec, and
// non-blocking like the original, with which it shares file status flags).
func dupConn(c net.Conn) (int, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := sc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			derr = os.NewSyscallError("fcntl", errno)
			return
		}
		nfd = int(r)
	}); err != nil {
		return -1, err
	}
	return nfd, derr
}

// runLoop moves the copy of p onto an event loop: it writes ClientPending,
// then moves both sockets onto the loop (closing p's net.Conns, whose
// descriptors it duplicated). It returns loopStarted once the session is
// registered (the loop calls p.finish when it ends), loopDeclined when the
// loop could not take the session before anything was moved (the caller
// then copies in goroutines), and loopEnded when the session ended while
// it was set up (the caller calls p.finish).
//
// l is the loop to use; nil means one of the shared loops.
func (p *proxy) runLoop(l *loop, pending []byte) int {
	if l == nil {
		var err error
		if l, err = pickLoop(); err != nil {
			return loopDeclined
		}
	}
	if l.init() != nil || l.failed() != nil {
		return loopDeclined
	}
	cfd, err := dupConn(p.client)
	if err != nil {
		return loopDeclined
	}
	sfd, err := dupConn(p.server)
	if err != nil {
		syscall.Close(cfd)
		return loopDeclined
	}
	if len(pending) > 0 {
		// Written from this goroutine, before the loop reads from the
		// client; a duplicate of the server socket shares its
		// non-blocking mode, so write through the net.Conn, which waits.
		n, err := p.server.Write(pending)
		p.dirs[0].wrote(int64(n))
		if err != nil {
			syscall.Close(cfd)
			syscall.Close(sfd)
			p.abort(&Error{Dir: 0, Op: "write", Err: err}, true)
			return loopEnded
		}
		p.touch()
	}
	s := &session{l: l, p: p, fd: [2]int{cfd, sfd}}
	s.in = [2]bool{true, true}
	s.out = [2]bool{true, true}
	p.client.Close()
	p.server.Close()
	p.mu.Lock()
	if p.aborted.Load() {
		p.mu.Unlock()
		syscall.Close(cfd)
		syscall.Close(sfd)
		return loopEnded
	}
	p.sess = s
	if err := l.add(s); err != nil {
		p.sess = nil
		p.aborted.Store(true)
		p.err = fmt.Errorf("pipe: %w", err)
		p.mu.Unlock()
		syscall.SetsockoptLinger(cfd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		syscall.Close(cfd)
		syscall.Close(sfd)
		return loopEnded
	}
	// From here on the loop owns the session, which may already have
	// ended: p belongs to the loop goroutine.
	p.mu.Unlock()
	return loopStarted
}

// abort asks the session's loop to end it at once.
func (s *session) abort(reset bool) { s.l.abort(s, reset) }
