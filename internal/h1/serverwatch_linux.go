package h1

import (
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/lbkit/lbkit/internal/epoll"
)

// closeWatcher tells connections that their client closed or reset them,
// to cancel the context of the request being served (net/http learns it
// from a background read per request; this costs one epoll_ctl per
// connection and nothing per request). A connection's socket is
// registered once, edge-triggered, for EPOLLRDHUP (and the implicit
// EPOLLHUP and EPOLLERR); the kernel drops the registration when the
// socket is closed, so there is no removal, and events of a connection
// no longer watched are ignored by its id. The watcher's goroutine runs
// while some connection is watched.
type closeWatcher struct {
	once    sync.Once
	err     error
	ep      *epoll.Poller
	cycleFn func(uintptr) bool
	events  []syscall.EpollEvent

	mu      sync.Mutex
	conns   map[uint64]*srvConn
	next    uint64
	running bool
}

// watcher is the process's close watcher.
var watcher closeWatcher

func (w *closeWatcher) init() error {
	w.once.Do(func() {
		w.ep, w.err = epoll.New()
		w.cycleFn = w.cycle
		w.events = make([]syscall.EpollEvent, 128)
		w.conns = make(map[uint64]*srvConn)
	})
	return w.err
}

// watch registers c, whose socket is sock. Without a socket (or epoll),
// c's requests are not cancelled on a close.
func (s *Server) watch(c *srvConn) {
	rc := c.sock
	if rc == nil {
		return
	}
	w := &watcher
	if w.init() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	id := w.next
	var cerr error
	rc.Control(func(fd uintptr) {
		cerr = w.ep.Ctl(syscall.EPOLL_CTL_ADD, int(fd), syscall.EPOLLRDHUP|epoll.ET, int32(uint32(id)), int32(uint32(id>>32)))
	})
	if cerr != nil {
		return
	}
	w.conns[id] = c
	c.watchID = id
	if !w.running {
		w.running = true
		go w.run()
	}
}

// unwatch forgets c (closed, hijacked or handed to HTTP/2); its events
// are ignored from now on.
func (s *Server) unwatch(c *srvConn) {
	w := &watcher
	w.mu.Lock()
	if c.watchID != 0 {
		delete(w.conns, c.watchID)
		c.watchID = 0
		if len(w.conns) == 0 && w.running {
			w.ep.Wake() // the goroutine ends
		}
	}
	w.mu.Unlock()
}

// run is the watcher's goroutine.
func (w *closeWatcher) run() {
	w.ep.Run(w.cycleFn)
}

func (w *closeWatcher) cycle(uintptr) bool {
	var closed []*srvConn
	for {
		n, err := epoll.Wait(w.ep.Fd, w.events)
		if err == syscall.EINTR {
			continue
		}
		wake := false
		w.mu.Lock()
		for i := range w.events[:n] {
			ev := &w.events[i]
			if w.ep.IsWake(ev) {
				wake = true
				continue
			}
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c, ok := w.conns[id]; ok {
				closed = append(closed, c)
			}
		}
		done := err != nil || n < len(w.events) && len(w.conns) == 0
		if done {
			w.running = false
		}
		w.mu.Unlock()
		if wake {
			w.ep.ResetWake()
		}
		for _, c := range closed {
			c.peerClose()
		}
		closed = closed[:0]
		if n == len(w.events) && !done {
			continue
		}
		return done
	}
}

// pending reports whether the socket holds unread bytes (one recvfrom with
// MSG_PEEK, made only on a close notice).
func pending(rc syscall.RawConn) bool {
	var b [1]byte
	var n int
	rc.Read(func(fd uintptr) bool {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	return n > 0
}

// hotState is what hotRead needs, made once per connection.
type hotState struct {
	fn  func(fd uintptr) bool // c.hotReadFd
	n   int
	err error
}

// hotRead waits for the next bytes of an idle connection within its read
// deadline (the hot window), and holds a read buffer only from when the
// socket is readable: a connection waiting in its hot window costs its
// goroutine and no buffer. It makes the system calls a blocking Read
// would (a read that finds nothing, the wait, the read).
func (c *srvConn) hotRead() (int, error) {
	c.putReadBuf()
	if c.hot.fn == nil {
		c.hot.fn = c.hotReadFd
	}
	c.hot.n, c.hot.err = 0, nil
	if err := c.sock.Read(c.hot.fn); err != nil {
		return 0, err // c.rbuf is nil
	}
	return c.hot.n, c.hot.err
}

func (c *srvConn) hotReadFd(fd uintptr) bool {
	if c.rbuf == nil {
		c.rbuf = getReadBuf()
	}
	for {
		n, err := syscall.Read(int(fd), c.rbuf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.putReadBuf()
			return false
		case err != nil:
			c.hot.n, c.hot.err = 0, os.NewSyscallError("read", err)
		case n == 0:
			c.hot.n, c.hot.err = 0, io.EOF
		default:
			c.hot.n = n
		}
		return true
	}
}
