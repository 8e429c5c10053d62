package lb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Client timeouts
//
// A ReverseProxy bounds what a client makes it wait for, as HAProxy's
// "timeout client" does, with deadlines on the client's connection rather
// than a timer or goroutine per read: every wait for the client's request
// body and every write of the response must make progress within
// ClientTimeout, and the request body must keep up an average of
// MinBodyRate bytes per second of waiting once MinBodyRateGrace has been
// spent waiting for it, as Kestrel's MinRequestBodyDataRate does. The
// request headers are the http.Server's: its ReadHeaderTimeout bounds them
// (see ReverseProxy).
//
// Deadlines are re-armed only when the one in force would cut a client
// that still keeps within the bounds, and then with some slack (an eighth
// of the smaller bound, at most a second), so that a busy connection
// re-arms about once per slack period, not once per read or write; a cut
// comes at most that slack after the bound.

// Defaults of ReverseProxy's client timeouts.
const (
	// DefaultClientTimeout bounds each wait on the client: nginx's
	// client_body_timeout and send_timeout, and the top of the 30 s to
	// 1 min range HAProxy configurations commonly give "timeout client".
	// A client on a bad mobile link stalls for seconds, not minutes; a
	// client that stalls for minutes holds a connection and a server for
	// nothing (the ten minutes of some Kubernetes ingresses serve
	// long-polling clients, which should rather get a longer setting of
	// their own).
	DefaultClientTimeout = time.Minute
	// DefaultMinBodyRate is the average rate, in bytes per second of
	// waiting, below which a request body is cut once the grace is spent:
	// Kestrel's MinRequestBodyDataRate.
	DefaultMinBodyRate = 240
	// DefaultMinBodyRateGrace is the wait for a request body that
	// DefaultMinBodyRate does not count against it: Kestrel's grace period.
	DefaultMinBodyRateGrace = 5 * time.Second
)

// ErrClientTimeout is the error of a request whose client was too slow:
// it sent its body below the minimum rate or made no progress within the
// client timeout. StatusForError maps it to 408 (Request Timeout).
var ErrClientTimeout = errors.New("lb: client timeout")

// deadliner sets the deadlines of a request's connection; http.Server's
// ResponseWriters implement it.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// clientGuard is the ResponseWriter of a request whose client timeouts the
// proxy enforces. It re-arms the connection's write deadline before a write
// that the deadline in force could cut too early, and holds the request's
// guardedBody. One goroutine, the handler's, uses it; guards are recycled
// when ServeHTTP returns.
type clientGuard struct {
	http.ResponseWriter
	dl       deadliner
	timeout  int64 // ClientTimeout (ns); 0: writes not bounded
	slack    int64 // ns added to a re-armed write deadline
	deadline int64 // the write deadline armed (monoNow ns); 0: none
	body     *guardedBody
	started  bool // a final response status went out
	wTimeout bool // a write failed on its deadline
}

var clientGuards = sync.Pool{New: func() any { return new(clientGuard) }}

// guardClient returns the ResponseWriter and request through which
// ServeHTTP serves r: when the client's timeouts apply (HTTP/1.x with a
// ResponseWriter that sets deadlines, as http.Server's does, possibly under
// wrappers that Unwrap), a clientGuard
// over w and r with its Body bounded. Streams meant to be long (gRPC
// content types) get the tunnel timeout of their Pool instead of
// ClientTimeout, and no rate bound. Release the guard with releaseGuard.
func (p *ReverseProxy) guardClient(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	if r.ProtoMajor == 2 {
		// HTTP/2 deadlines end a stream when they pass, even with no
		// read or write waiting: see ReverseProxy for its bounds.
		// HTTP/3's (a QUIC stream's) bound each read and write as a
		// connection's do, so the guard works there as over HTTP/1.x.
		return w, r
	}
	dl := deadlinerOf(w)
	if dl == nil {
		return w, r
	}
	timeout, rate, grace := p.clientTimeout(), p.minBodyRate(), p.minBodyRateGrace()
	if IsGRPC(r) {
		timeout, rate = p.poolOf(r).tunnelTimeout(), 0
	}
	if timeout <= 0 && rate <= 0 {
		return w, r
	}
	g := clientGuards.Get().(*clientGuard)
	g.ResponseWriter, g.dl = w, dl
	g.timeout = int64(timeout)
	g.slack = slackFor(timeout, 0)
	g.armWrite() // for a 100 Continue, and over a previous request's deadline
	if r.Body != nil && r.Body != http.NoBody {
		g.body = &guardedBody{rc: r.Body, dl: dl, timeout: int64(timeout), rate: rate,
			grace: int64(grace), slack: slackFor(timeout, grace)}
		r.Body = g.body
	}
	return g, r
}

// deadlinerOf finds the deadliner under w and the ResponseWriters that
// wrap it (and Unwrap, as http.ResponseController expects), or nil.
func deadlinerOf(w http.ResponseWriter) deadliner {
	for range 16 {
		switch t := w.(type) {
		case deadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// releaseGuard recycles the clientGuard that guardClient made of w, if any.
// The guardedBody is not recycled: a transport may read it after the
// handler returns.
func releaseGuard(w http.ResponseWriter) {
	if g, ok := w.(*clientGuard); ok {
		if g.body != nil {
			// A late read must not set a deadline on the connection,
			// which now belongs to its next request.
			g.body.done.Store(true)
		}
		*g = clientGuard{}
		clientGuards.Put(g)
	}
}

// guardOf returns the clientGuard under w, the ResponseWriter a request is
// served with, or nil.
func guardOf(w http.ResponseWriter) *clientGuard {
	if aw, ok := w.(*accessWriter); ok {
		w = aw.ResponseWriter
	}
	g, _ := w.(*clientGuard)
	return g
}

// timedOut reports whether the client was cut for being too slow.
func (g *clientGuard) timedOut() bool {
	return g != nil && (g.wTimeout || g.body != nil && g.body.expired(monoNow()))
}

// slackFor is the slack of re-armed deadlines: an eighth of the smaller
// positive bound, between 1 ms and 1 s.
func slackFor(timeout, grace time.Duration) int64 {
	b := timeout
	if b <= 0 || grace > 0 && grace < b {
		b = grace
	}
	return int64(min(max(b/8, time.Millisecond), time.Second))
}

// poolOf is the Pool that serves r.
func (p *ReverseProxy) poolOf(r *http.Request) *Pool {
	if p.Route != nil {
		if rp := p.Route(r); rp != nil {
			return rp
		}
	}
	return p.Pool
}

// armWrite makes sure the write deadline leaves at least the client
// timeout from now.
func (g *clientGuard) armWrite() {
	if g.timeout <= 0 {
		return
	}
	now := monoNow()
	if g.deadline-now >= g.timeout {
		return
	}
	g.deadline = now + g.timeout + g.slack
	g.dl.SetWriteDeadline(clockBase.Add(time.Duration(g.deadline)))
}

func (g *clientGuard) noteWrite(err error) {
	if err != nil && isTimeout(err) {
		g.wTimeout = true
	}
}

// WriteHeader sends the response header with a fresh write deadline.
func (g *clientGuard) WriteHeader(code int) {
	g.armWrite()
	if code >= 200 || code == http.StatusSwitchingProtocols {
		g.started = true
	}
	g.ResponseWriter.WriteHeader(code)
}

// Write writes to the client within the client timeout.
func (g *clientGuard) Write(p []byte) (int, error) {
	g.armWrite()
	g.started = true
	n, err := g.ResponseWriter.Write(p)
	g.noteWrite(err)
	return n, err
}

// FlushError flushes to the client within the client timeout.
func (g *clientGuard) FlushError() error {
	g.armWrite()
	err := http.NewResponseController(g.ResponseWriter).Flush()
	g.noteWrite(err)
	return err
}

// Flush is FlushError without its error.
func (g *clientGuard) Flush() { _ = g.FlushError() }

// Hijack hands over the connection with its deadlines cleared: an upgraded
// stream is bounded by its Pool's TunnelTimeout instead.
func (g *clientGuard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(g.ResponseWriter).Hijack()
	if err == nil {
		c.SetDeadline(time.Time{})
		g.timeout = 0
	}
	return c, brw, err
}

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (g *clientGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// guardedBody is a request body read within the client timeout and the
// minimum rate. Reads come from one goroutine at a time (the handler's or
// a transport's); expired may be called from any.
//
// The rate is Kestrel's: an average over the time spent waiting for the
// body, so that time the proxy spends not reading (a server slow to take
// the body) is not held against the client. Before a read, with b bytes
// read in w of waiting, the read may wait for max(grace, b/rate) - w, and
// for the client timeout.
type guardedBody struct {
	rc      io.ReadCloser
	dl      deadliner
	timeout int64 // ns; 0: none
	rate    int64 // bytes per second; 0: none
	grace   int64 // ns
	slack   int64 // ns
	n       int64 // bytes read
	waited  int64 // ns spent in reads

	deadline atomic.Int64 // the read deadline armed (monoNow ns); 0: none
	done     atomic.Bool  // the body ended, or its request: no deadline is set
	reading  atomic.Bool  // a Read is waiting for the client
	cut      atomic.Bool  // a read failed on its deadline
}

// budget returns how long the next read may wait, in ns.
func (b *guardedBody) budget() int64 {
	budget := int64(1<<62 - 1)
	if b.timeout > 0 {
		budget = b.timeout
	}
	if b.rate > 0 {
		earned := b.n/b.rate*int64(time.Second) + b.n%b.rate*int64(time.Second)/b.rate
		budget = min(budget, max(b.grace, earned)-b.waited)
	}
	return budget
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return b.rc.Read(p)
	}
	start := monoNow()
	if e := start + b.budget(); b.deadline.Load() < e {
		d := e + b.slack
		b.deadline.Store(d)
		b.dl.SetReadDeadline(clockBase.Add(time.Duration(d)))
	}
	b.reading.Store(true)
	n, err := b.rc.Read(p)
	b.reading.Store(false)
	b.waited += monoNow() - start
	b.n += int64(n)
	switch {
	case err == nil:
	case err == io.EOF:
		// Nothing bounds the connection's reads after the body:
		// http.Server's background read must not fail on this deadline.
		b.done.Store(true)
		b.dl.SetReadDeadline(time.Time{})
	case isTimeout(err):
		b.cut.Store(true)
		err = fmt.Errorf("%w: request body: %w", ErrClientTimeout, err)
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.rc.Close() }

// expired reports whether a read of the body failed, or is failing, on
// its deadline at now. http.Server cancels the request's context as the
// read fails, which a transport may see before the read returns. A
// deadline passed while no read waits (the server was slow to take the
// body) is not the client's fault.
func (b *guardedBody) expired(now int64) bool {
	if b.cut.Load() {
		return true
	}
	d := b.deadline.Load()
	return d != 0 && !b.done.Load() && b.reading.Load() && now >= d
}

// clientTimedOut answers a request whose client was too slow: 408 (Request
// Timeout) with Connection: close when no response started, else nothing
// (the connection is closed by the failed write). The abort is the
// client's: counted as such and logged with termination state "cD".
func (p *ReverseProxy) clientTimedOut(w http.ResponseWriter, r *http.Request, g *clientGuard, err error) {
	if !errors.Is(err, ErrClientTimeout) {
		err = fmt.Errorf("%w: %w", ErrClientTimeout, err)
	}
	if p.traced() {
		if st := accessFrom(r.Context()); st != nil {
			st.err = err
			st.noServer = false
		}
	}
	p.stats.aborts.Add(1)
	if g.started {
		return
	}
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	p.stats.responses.count(http.StatusRequestTimeout)
	if p.ErrorHandler != nil {
		p.ErrorHandler(w, r, err)
		return
	}
	http.Error(w, http.StatusText(http.StatusRequestTimeout), http.StatusRequestTimeout)
}

// clientTimeout is ClientTimeout with its default applied, 0 for none.
func (p *ReverseProxy) clientTimeout() time.Duration {
	return withDefault(p.ClientTimeout, DefaultClientTimeout)
}

// minBodyRate is MinBodyRate with its default applied, 0 for none.
func (p *ReverseProxy) minBodyRate() int64 {
	return int64(withDefault(p.MinBodyRate, DefaultMinBodyRate))
}

// minBodyRateGrace is MinBodyRateGrace with its default applied.
func (p *ReverseProxy) minBodyRateGrace() time.Duration {
	return withDefault(p.MinBodyRateGrace, DefaultMinBodyRateGrace)
}
