package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// ServeConn proxies the client connection c to a server of the pool, with
// retries on connection failure, and copies bytes both ways until both
// directions end or TunnelTimeout passes without traffic. When no server is
// pickable the connection goes to Fallback, or is closed.
//
// When c came from a [TCPFrontend] and both c (under its wrappers) and the
// connection to the server are plain TCP connections, on Linux, ServeConn
// returns as soon as the session is on the event loop that copies its
// bytes, holding no goroutine for it: the session then owns c, and ends
// it (close, statistics, Outcome, access record) when the copy ends,
// while the TCPFrontend keeps tracking it until then (Shutdown waits for
// it, Close ends it). The caller must not read, write, close or set
// deadlines on c after ServeConn returned; reading c.Info is fine. In
// every other case (TLS on either side, other systems, connections not
// from a TCPFrontend) ServeConn returns when the session has ended, as
// before.
func (p *Pool) ServeConn(ctx context.Context, c *Conn) {
	var ci *connectInfo
	if c.access != nil {
		ci = new(connectInfo)
	}
	var (
		sc    net.Conn
		lease Lease
		err   error
	)
	if c.hold != nil && p.TLS == nil && p.Dial == nil && pipe.MayLoop(rawConn(c)) {
		// The session will most likely go onto the event loop and this
		// goroutine end with ServeConn: its stack need not be spared.
		sc, lease, err = p.connect(ctx, c.Info.PickInfo(), &c.Info, ci)
	} else {
		sc, lease, err = p.connectAside(ctx, c, ci)
	}
	if err != nil {
		if errors.Is(err, ErrNoServer) && p.Fallback != nil {
			p.Fallback.ServeConn(ctx, c) // the Fallback's session, not logged here
			return
		}
		ctxDone := ctx.Err() != nil
		p.logger().LogAttrs(ctx, slog.LevelDebug, "no server for connection",
			slog.String("pool", p.Name), slog.String("client", c.Info.Remote.String()), slog.Any("error", err))
		c.Close()
		if ci != nil {
			p.logSession(c, ci, Lease{}, err, false, 0, 0, ctxDone)
		}
		return
	}
	c.SetReadDeadline(time.Time{}) // the frontend's handshake deadline
	client, pending := unwrapConn(c)
	sctx, done := p.sessionContext(ctx, lease.Server)
	opt := pipe.Options{Idle: p.tunnelTimeout(), ClientPending: pending}
	st := &lease.Server.rt.traffic // the pool's totals are its servers'
	opt.Counters[0][0], opt.Counters[1][0] = &st.bytesIn, &st.bytesOut
	if c.fe != nil {
		opt.Counters[0][1], opt.Counters[1][1] = &c.fe.bytesIn, &c.fe.bytesOut
	}
	if c.hold == nil {
		// No frontend tracks the connection after ServeConn returns:
		// wait for the session.
		up, down, err := pipe.Proxy(sctx, client, sc, opt)
		p.endSession(c, ci, lease, sctx, done, pipe.Result{Up: up, Down: down, Err: err})
		return
	}
	h := c.hold
	h.acquire()
	pipe.Start(sctx, client, sc, opt, func(r pipe.Result) {
		// With r.OnLoop, on the event loop's goroutine, shared by many
		// sessions: this must not block or panic.
		defer func() {
			if v := recover(); v != nil {
				p.sessionPanic(c, "panic ending session", v)
				h.release()
			}
		}()
		p.endSession(c, ci, lease, sctx, done, r)
	})
}

// endSession is the tail of a session: its counters, its Outcome, its
// access record and the release of c's hold (if any). On the event loop
// (r.OnLoop), the access record goes to a goroutine of its own, which
// releases the hold once AccessLog returned, so that a slow AccessLogger
// holds up no other session and the TCPFrontend still sees the session
// end after its record.
func (p *Pool) endSession(c *Conn, ci *connectInfo, lease Lease, sctx context.Context, done func(), r pipe.Result) {
	killed := sctx.Err() != nil // the frontend closed or the server went down
	done()
	st := &lease.Server.rt.traffic
	if !killed {
		switch {
		case clientBroke(r.Err):
			st.cliAborts.Add(1)
		case serverBroke(r.Err):
			st.srvAborts.Add(1)
		}
	}
	if ci != nil {
		ci.counts = p.liveCounts(lease.Server)
	}
	lease.Done(Outcome{Err: r.Err, Sent: r.Up, Received: r.Down})
	if ci == nil {
		c.hold.release()
		return
	}
	if !r.OnLoop {
		p.logSession(c, ci, lease, r.Err, true, r.Up, r.Down, killed)
		c.hold.release()
		return
	}
	go p.logSessionAside(c, ci, lease, r, killed)
}

// logSessionAside logs a session that ended on the event loop, then
// releases c's hold.
func (p *Pool) logSessionAside(c *Conn, ci *connectInfo, lease Lease, r pipe.Result, killed bool) {
	defer func() {
		if v := recover(); v != nil {
			p.sessionPanic(c, "panic logging session", v)
		}
		c.hold.release()
	}()
	p.logSession(c, ci, lease, r.Err, true, r.Up, r.Down, killed)
}

// sessionPanic counts in c's frontend's Errors and logs a panic v
// recovered at the end of c's session, off the connection's goroutine.
func (p *Pool) sessionPanic(c *Conn, msg string, v any) {
	if c.fe != nil {
		c.fe.errors.Add(1)
	}
	p.logger().LogAttrs(context.Background(), slog.LevelError, msg,
		slog.String("pool", p.Name), slog.String("client", c.Info.Remote.String()),
		slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
}

// connectAside runs connect on a goroutine of its own and waits for it.
// ServeConn calls it for a session that may stay on its goroutine: such a
// goroutine lives as long as the session, most of it waiting for
// the copy to end, and keeps the largest stack it ever grew: connecting
// (resolver, dialer, PROXY header, TLS handshake) is the deepest thing it
// does, and would leave it 8 KiB of stack per idle session instead of 4.
// The goroutine costs about a microsecond per session, against the tens a
// connection to a server takes.
func (p *Pool) connectAside(ctx context.Context, c *Conn, ci *connectInfo) (net.Conn, Lease, error) {
	r := make(chan connectResult, 1)
	go p.connectTo(ctx, c, ci, r)
	res := <-r
	if res.panicked != nil {
		// Where the frontend recovers it, as if connect had run here.
		panic(res.panicked)
	}
	return res.c, res.lease, res.err
}

// connectResult is what connect returned, or the value it panicked with
// (a Pool.Dial or ProxyHeader of the user's), sent by connectTo.
type connectResult struct {
	c        net.Conn
	lease    Lease
	err      error
	panicked any
}

// connectTo is the goroutine of connectAside.
func (p *Pool) connectTo(ctx context.Context, c *Conn, ci *connectInfo, r chan<- connectResult) {
	defer func() {
		if v := recover(); v != nil {
			r <- connectResult{panicked: fmt.Sprintf("%v\n%s", v, debug.Stack())}
		}
	}()
	sc, lease, err := p.connect(ctx, c.Info.PickInfo(), &c.Info, ci)
	r <- connectResult{c: sc, lease: lease, err: err}
}

// bufferedConn is a connection layered over another that may hold bytes it
// read from it and not handed out yet: a *Conn, or a connection accepted by
// a proxyproto.Listener (whose addresses are in ConnInfo already).
type bufferedConn interface {
	net.Conn
	// Unwrap returns the connection underneath.
	Unwrap() net.Conn
	// TakeBuffered returns the bytes read from Unwrap and not read yet,
	// and forgets them.
	TakeBuffered() []byte
}

// rawConn returns the connection under c's bufferedConn layers, leaving
// the bytes they hold in place.
func rawConn(c *Conn) net.Conn {
	var nc net.Conn = c
	for {
		bc, ok := nc.(bufferedConn)
		if !ok {
			return nc
		}
		nc = bc.Unwrap()
	}
}

// unwrapConn peels bufferedConn layers so that the copy sees the raw
// connection (and can splice), returning the bytes they held.
func unwrapConn(c *Conn) (net.Conn, []byte) {
	var pending []byte
	var nc net.Conn = c
	for {
		bc, ok := nc.(bufferedConn)
		if !ok {
			return nc, pending
		}
		if b := bc.TakeBuffered(); len(b) > 0 {
			// Outer layers were read before inner ones.
			pending = append(pending, b...)
		}
		nc = bc.Unwrap()
	}
}
