package pipe

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Proxy.
type Options struct {
	// Idle closes both connections when no byte has moved in either
	// direction for this long (bidirectional inactivity, like HAProxy's
	// "timeout tunnel"). 0 means no idle timeout. See the package
	// documentation for the precision of the timeout.
	Idle time.Duration
	// Goroutines copies in two goroutines (with splice(2) between two
	// *net.TCPConn on Linux) even when the event loop could carry the
	// copy. See "Copy paths" in the package documentation.
	Goroutines bool
	// ClientPending are bytes already read from the client (peeked) that
	// must be written to the server first, before anything else.
	ClientPending []byte
	// Counters receive the bytes of each direction (0: client to server,
	// 1: server to client) as they are written, so that the traffic of a
	// long copy shows while it runs; Proxy's results count the same bytes.
	// The event loop and the buffered copy add after every write; the
	// splice path after every chunk of up to 128 KiB, and at the idle
	// timeout's probes.
	Counters [2]Counters

	// loop, in tests, is the event loop to use instead of the shared ones.
	loop *loop
}

// Counters are counters that the bytes of one direction are added to, after
// every write; nil entries are skipped. It is an array so that Options carry
// it without allocating.
type Counters [3]*atomic.Int64

// add adds n to every counter.
func (c *Counters) add(n int64) {
	for _, ctr := range c {
		if ctr != nil {
			ctr.Add(n)
		}
	}
}

// ErrIdle is the error Proxy returns when the idle timeout ended the copy.
var ErrIdle = errors.New("pipe: idle timeout")

// Error is the read or write error that aborted a copy, as Proxy returns
// it: it says which direction failed and how, and so whose connection
// broke.
type Error struct {
	// Dir is the direction that failed: 0 client to server, 1 server to
	// client.
	Dir int
	// Op is "read" for a read from the direction's source, "write" for a
	// write to its destination, or "" when the copy cannot tell (the
	// splice path, whose calls do both): then neither Client nor Server
	// holds.
	Op string
	// Err is the error of the read or write.
	Err error
}

var dirNames = [2]string{"client to server", "server to client"}

func (e *Error) Error() string { return "pipe: " + dirNames[e.Dir&1] + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Client reports whether the client's connection failed: a read from the
// client or a write to it.
func (e *Error) Client() bool {
	return e.Op == "read" && e.Dir == 0 || e.Op == "write" && e.Dir == 1
}

// Server reports whether the server's connection failed: a read from the
// server or a write to it.
func (e *Error) Server() bool {
	return e.Op == "read" && e.Dir == 1 || e.Op == "write" && e.Dir == 0
}

const (
	// spliceChunk is the most a single (*net.TCPConn).ReadFrom call moves on
	// the splice path: progress becomes visible at least this often.
	spliceChunk = 128 << 10
	// bufSize is the size of the pooled buffers of the copy loop.
	bufSize = 32 << 10
)

// bufPool holds *[]byte of bufSize bytes.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// aLongTimeAgo is a deadline in the past: setting it wakes up a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Result is the outcome of a copy: the bytes written to the server (Up,
// including ClientPending) and to the client (Down), and the first error
// that was not a clean EOF or close (see Proxy).
type Result struct {
	Up, Down int64
	Err      error
	// OnLoop is set when done runs on an event loop's goroutine: Start
	// returned, or returns, true.
	OnLoop bool
}

// Proxy copies client→server and server→client until both directions have
// ended, or ctx is done, or the idle timeout fires, then closes both
// connections. It returns the bytes written to the server (up, including
// ClientPending) and to the client (down), and the first error that was not
// a clean EOF or close: nil for a clean end in both directions,
// context.Cause(ctx) when ctx ended it, ErrIdle for the idle timeout, and
// otherwise the first read or write error, as an *Error.
//
// Proxy owns both connections from the call on: it sets and clears their
// deadlines, half-closes and closes them. Pass the raw connections (not
// wrappers) so that two *net.TCPConn can be spliced.
//
// Proxy is Start and a wait for its done function.
func Proxy(ctx context.Context, client, server net.Conn, opt Options) (up, down int64, err error) {
	w := &waiter{ch: make(chan struct{})}
	if Start(ctx, client, server, opt, w.done) {
		<-w.ch
	}
	return w.r.Up, w.r.Down, w.r.Err
}

// waiter turns Start's done function into Proxy's return.
type waiter struct {
	r  Result
	ch chan struct{}
}

func (w *waiter) done(r Result) {
	w.r = r
	close(w.ch)
}

// Start is Proxy without the wait, where the event loop carries the copy:
// it moves both sockets onto an event loop and returns true as soon as they
// are registered there, holding no goroutine for the session; done is then
// called once, on the loop's goroutine, when the session has ended and both
// connections are closed. Otherwise (a connection that is not a plain
// *net.TCPConn, Options.Goroutines, other systems, a loop that cannot take
// the session, or a session that ended while it was being set up) Start
// copies on the calling goroutine and one more, calls done once the copy
// has ended, and returns false: done has then been called, on the calling
// goroutine, before Start returns.
//
// done receives what Proxy would return. It runs on a loop shared by many
// sessions when Start returned true, so it must not block: hand anything
// slow (logging to a remote sink) to a goroutine. It must not panic
// either, which would end the process; recover inside it.
//
// Ownership is as for Proxy: the connections belong to the copy from the
// call on, also after Start returned true.
func Start(ctx context.Context, client, server net.Conn, opt Options, done func(Result)) (async bool) {
	p := &proxy{client: client, server: server, start: time.Now(), done: done}
	if opt.Idle > 0 {
		p.idle = opt.Idle
	}
	_, ctcp := client.(*net.TCPConn)
	_, stcp := server.(*net.TCPConn)
	p.splice = canSplice && ctcp && stcp
	useLoop := !opt.Goroutines && canLoop(client, server)
	if useLoop {
		p.splice = false
	}
	p.dirs[0] = direction{p: p, dir: 0, src: client, dst: server, pending: opt.ClientPending, ctr: opt.Counters[0]}
	p.dirs[1] = direction{p: p, dir: 1, src: server, dst: client, ctr: opt.Counters[1]}

	if ctx.Err() != nil {
		p.abort(context.Cause(ctx), false)
		done(Result{Err: p.err})
		return false
	}
	client.SetDeadline(time.Time{})
	server.SetDeadline(time.Time{})

	p.ctxDone = make(chan struct{})
	p.stopCtx = context.AfterFunc(ctx, func() {
		defer close(p.ctxDone)
		p.abort(context.Cause(ctx), false)
	})
	if p.idle > 0 {
		p.wd.start(p)
	}
	if useLoop {
		switch p.runLoop(opt.loop, opt.ClientPending) {
		case loopStarted:
			return true
		case loopEnded:
			p.finish()
			return false
		}
	}
	p.dirs[0].running.Store(true)
	p.dirs[1].running.Store(true)
	d0 := make(chan struct{})
	go p.dirs[0].runAside(d0)
	p.dirs[1].run()
	<-d0
	p.finish()
	return false
}

// finish ends the copy once both directions have ended: it stops the
// context's and the idle timeout's watchers, closes both connections and
// calls done.
func (p *proxy) finish() {
	p.mu.Lock()
	p.finished = true
	onLoop := p.sess != nil
	p.mu.Unlock()
	if !p.stopCtx() {
		<-p.ctxDone
	}
	if p.idle > 0 {
		p.wd.stop()
	}
	p.client.Close()
	p.server.Close()
	p.done(Result{Up: p.dirs[0].n, Down: p.dirs[1].n, Err: p.err, OnLoop: onLoop})
}

// Outcomes of runLoop.
const (
	loopDeclined = iota // the loop did not take the session: copy in goroutines
	loopStarted         // the session is on the loop, which calls finish
	loopEnded           // the session ended before it reached the loop
)

// proxy is the state of one Proxy call.
type proxy struct {
	client, server net.Conn
	idle           time.Duration
	splice         bool
	start          time.Time
	// last is the time (since start) of the last observed progress in
	// either direction.
	last atomic.Int64
	// aborted is set once abort closed the connections.
	aborted atomic.Bool

	dirs [2]direction
	wd   watchdog
	// sess is the event loop's session once the copy moved there; abort
	// then goes through the loop.
	sess *session
	// done receives the result (Start's argument).
	done func(Result)
	// stopCtx stops the context's watcher, which closes ctxDone once it
	// has run.
	stopCtx func() bool
	ctxDone chan struct{}

	mu       sync.Mutex
	err      error
	finished bool // both directions have ended: abort does nothing
}

// now returns the time since p.start, from the monotonic clock.
func (p *proxy) now() time.Duration { return time.Since(p.start) }

// touch records progress.
func (p *proxy) touch() { p.last.Store(int64(p.now())) }

// abort ends the copy at once: it records err (if it is the first error) and
// closes both connections, sending a TCP reset when reset is set. It is a
// no-op once the connections are closed or both directions have ended.
func (p *proxy) abort(err error, reset bool) {
	p.mu.Lock()
	if p.finished || p.aborted.Load() {
		p.mu.Unlock()
		return
	}
	p.err = err
	p.aborted.Store(true)
	s := p.sess
	p.mu.Unlock()
	if s != nil {
		s.abort(reset)
		return
	}
	forceClose(p.client, reset)
	forceClose(p.server, reset)
}

// forceClose closes the connection under c at once. A *tls.Conn (or any
// connection with a NetConn method) would otherwise try to send a
// close_notify alert first, which can block for seconds on a peer that does
// not read.
func forceClose(c net.Conn, reset bool) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		if raw := nc.NetConn(); raw != nil {
			c = raw
		}
	}
	if tc, ok := c.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	c.Close()
}

// direction is one half of the copy.
type direction struct {
	p        *proxy
	dir      int // 0: client to server, 1: server to client
	src, dst net.Conn
	pending  []byte
	n        int64    // bytes written to dst; read by Proxy once run returned
	ctr      Counters // also receive the bytes written to dst
	lr       io.LimitedReader

	// running is cleared when the direction has ended.
	running atomic.Bool
	// ack is the last watchdog probe the direction answered.
	ack atomic.Uint64
	// probedAt is when the oldest probe the direction has not answered was
	// sent, or -1; owned by the watchdog.
	probedAt time.Duration
}

// wrote counts n bytes written to dst.
func (d *direction) wrote(n int64) {
	if n > 0 {
		d.n += n
		d.ctr.add(n)
	}
}

// runAside is run on a goroutine of its own; it closes done when the
// direction has ended.
func (d *direction) runAside(done chan<- struct{}) {
	defer close(done)
	d.run()
}

// run copies until EOF or an error, then half-closes dst or aborts.
func (d *direction) run() {
	defer d.running.Store(false)
	op, err := d.copy()
	p := d.p
	switch {
	case p.aborted.Load():
		// The error (if any) comes from abort closing the connections;
		// abort recorded the reason.
	case err == nil:
		// EOF from src: pass it on and let the other direction finish.
		cw, ok := d.dst.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			// The peer cannot be told about the EOF otherwise.
			p.abort(nil, false)
		}
	case errors.Is(err, net.ErrClosed):
		// A connection was closed under Proxy: a clean end.
		p.abort(nil, false)
	default:
		p.abort(&Error{Dir: d.dir, Op: op, Err: err}, true)
	}
}

// copy moves bytes from src to dst until EOF (nil) or an error, which it
// returns with the operation that failed ("read", "write", or "" when it
// cannot tell).
func (d *direction) copy() (op string, err error) {
	p := d.p
	if len(d.pending) > 0 {
		n, err := d.dst.Write(d.pending)
		d.wrote(int64(n))
		p.touch()
		if err != nil {
			return "write", err
		}
	}
	if p.splice {
		return "", d.copySplice()
	}
	return d.copyBuffered()
}

// copySplice copies with (*net.TCPConn).ReadFrom, which splices from a
// *net.TCPConn, also when it is wrapped in an *io.LimitedReader. The limit
// makes the call return after each chunk so that progress is observed.
func (d *direction) copySplice() error {
	p := d.p
	dst := d.dst.(*net.TCPConn)
	d.lr.R = d.src
	for {
		d.lr.N = spliceChunk
		n, err := dst.ReadFrom(&d.lr)
		if n > 0 {
			d.wrote(n)
			p.touch()
		}
		if err != nil {
			if p.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded) && !p.aborted.Load() {
				// A probe of the watchdog: the bytes moved so far are
				// recorded above. The splice pipe is empty when a read
				// times out, so nothing is lost by resuming.
				d.src.SetReadDeadline(time.Time{})
				d.ack.Store(p.wd.seq.Load())
				continue
			}
			return err
		}
		if d.lr.N > 0 {
			return nil // EOF before the end of the chunk
		}
	}
}

// copyBuffered copies through a pooled buffer, recording progress after
// every read and every write.
func (d *direction) copyBuffered() (op string, err error) {
	p := d.p
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		nr, rerr := d.src.Read(buf)
		if nr > 0 {
			p.touch()
			nw, werr := d.dst.Write(buf[:nr])
			d.wrote(int64(nw))
			p.touch()
			if werr != nil {
				return "write", werr
			}
			if nw != nr {
				return "write", io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return "", nil
		}
		if rerr != nil {
			return "read", rerr
		}
	}
}
