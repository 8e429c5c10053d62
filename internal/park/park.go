package park

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrTimeout is what ready receives when a parked connection's
	// deadline passed before its socket became readable.
	ErrTimeout = errors.New("park: deadline passed")
	// ErrUnsupported is returned by Park for a connection it cannot watch
	// (no socket under SyscallConn, or a system other than Linux): the
	// caller then waits for the next bytes with a blocking read on its own
	// goroutine.
	ErrUnsupported = errors.New("park: connection cannot be parked")
)

// Tick is the granularity of deadlines: a parked connection times out at
// the first tick of its loop's timing wheel at or after its deadline, so
// between the deadline and about Tick later (plus the scheduling latency
// of a timer), never before.
const Tick = 100 * time.Millisecond

// A Parker watches parked connections on GOMAXPROCS (or fewer) epoll
// loops; see the package documentation. Its methods are safe for
// concurrent use. The zero value is not usable: call New.
type Parker struct {
	once  sync.Once
	made  atomic.Bool // loops is set
	loops []*loop
	next  atomic.Uint32
}

// New returns a Parker. Its loops start lazily, on the first Park that
// needs one, and a loop's goroutine ends whenever the loop has nothing
// parked; a Parker that has nothing parked holds no goroutine and needs no
// Close.
func New() *Parker { return &Parker{} }

// Ticket names one registration made by Park, for Cancel. It is a small
// value, copied freely; the zero Ticket names nothing.
type Ticket struct {
	l   *loop
	idx uint32
	gen uint32
}

// Len returns the number of connections parked now: registered, and
// neither woken, timed out nor cancelled yet. It is meant for statistics
// and tests, and is safe for concurrent use.
func (p *Parker) Len() int {
	n := 0
	for _, l := range p.loopsMade() {
		n += int(l.count.Load())
	}
	return n
}

// loopsMade returns the loops made so far (none before the first Park).
func (p *Parker) loopsMade() []*loop {
	if !p.made.Load() {
		return nil
	}
	return p.loops
}
