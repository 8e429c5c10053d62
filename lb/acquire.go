package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// Lease is one use of a server, from Acquire to Done. It is a small value;
// call Done exactly once.
type Lease struct {
	// Server is the server chosen.
	Server *Server
	// Sticky reports that Affinity chose the server.
	Sticky bool

	pool  *Pool
	start time.Time
}

// Done ends the use of the server and reports how it went to the pool's
// statistics and Observers. o.Duration is filled in when zero.
func (l Lease) Done(o Outcome) {
	if l.pool == nil {
		return
	}
	if o.Failed() {
		l.Server.rt.failures.Add(1)
	}
	obsB, okB := l.pool.Balancer.(Observer)
	obsH, okH := l.pool.HealthChecker.(Observer)
	if okB || okH {
		if o.Duration == 0 {
			o.Duration = time.Since(l.start)
		}
		if okB {
			obsB.Observe(l.Server, o)
		}
		if okH {
			obsH.Observe(l.Server, o)
		}
	}
	l.pool.release(l.Server)
}

// Acquire chooses a server for one connection or request and counts it as
// active until Lease.Done. Affinity is consulted first, then the Balancer.
// When the chosen server is at its MaxConns another one with room is
// chosen; when none has room (or the client's pinned server is full) Acquire
// waits in the queue until a slot frees, QueueTimeout passes or ctx is done.
//
// It returns ErrNoServer when no server is pickable, ErrQueueTimeout, or the
// Balancer's error, wrapped.
func (p *Pool) Acquire(ctx context.Context, info PickInfo) (Lease, error) {
	snap := p.snap.Load()
	if snap == nil || len(snap.Servers) == 0 {
		return Lease{}, ErrNoServer
	}
	if len(info.Avoid) > 0 {
		snap = p.without(snap, info.Avoid)
	}
	var s *Server
	sticky := false
	if p.Affinity != nil {
		s, sticky = p.Affinity.Lookup(snap, info)
	}
	if !sticky {
		var err error
		if s, err = p.pick(snap, info); err != nil {
			return Lease{}, err
		}
	}
	if !s.tryAcquire() {
		var err error
		if s, err = p.acquireSlow(ctx, snap, info, s, sticky); err != nil {
			return Lease{}, err
		}
	}
	s.rt.total.Add(1)
	if p.Affinity != nil && !sticky {
		p.Affinity.Pin(info, s)
	}
	l := Lease{Server: s, Sticky: sticky, pool: p}
	if p.observed() {
		l.start = time.Now()
	}
	return l, nil
}

func (p *Pool) observed() bool {
	_, okB := p.Balancer.(Observer)
	_, okH := p.HealthChecker.(Observer)
	return okB || okH
}

func (p *Pool) pick(snap *Snapshot, info PickInfo) (*Server, error) {
	if p.Balancer == nil {
		return p.rotate(snap), nil
	}
	s, err := p.Balancer.Pick(snap, info)
	if err != nil {
		return nil, fmt.Errorf("lb: pick: %w", err)
	}
	if s == nil || s.rt == nil {
		return nil, errors.New("lb: pick: balancer returned no pool server")
	}
	return s, nil
}

// rotate is the default balancer: a plain weighted rotation, each server
// taking Weight consecutive turns. O(1) with equal weights, O(log n)
// otherwise.
func (p *Pool) rotate(snap *Snapshot) *Server {
	n := p.rotor.Add(1) - 1
	if snap.cum == nil {
		return snap.Servers[n%uint64(len(snap.Servers))]
	}
	k := int(n % uint64(snap.cum[len(snap.cum)-1]))
	i, _ := slices.BinarySearch(snap.cum, k+1)
	return snap.Servers[i]
}

// tryAcquire takes one slot of s if it is below MaxConns.
func (s *Server) tryAcquire() bool {
	if s.MaxConns <= 0 {
		s.rt.active.Add(1)
		return true
	}
	for {
		n := s.rt.active.Load()
		if n >= int64(s.MaxConns) {
			return false
		}
		if s.rt.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// without derives a snapshot lacking the avoided servers; it returns snap
// itself when that would leave nothing (retrying a server beats failing).
func (p *Pool) without(snap *Snapshot, avoid []*Server) *Snapshot {
	return p.derive(snap, func(s *Server) bool {
		for _, a := range avoid {
			if a.Name == s.Name {
				return false
			}
		}
		return true
	})
}

func (p *Pool) derive(snap *Snapshot, keep func(*Server) bool) *Snapshot {
	kept := make([]*Server, 0, len(snap.Servers))
	for _, s := range snap.Servers {
		if keep(s) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 || len(kept) == len(snap.Servers) {
		return snap
	}
	d := &Snapshot{Servers: kept, Version: snap.Version, Backup: snap.Backup}
	p.prepare(d)
	return d
}

// acquireSlow handles a chosen server at its MaxConns: pick among servers
// with room, else queue. A client pinned to a full server waits for it.
func (p *Pool) acquireSlow(ctx context.Context, snap *Snapshot, info PickInfo, full *Server, sticky bool) (*Server, error) {
	timeout := p.QueueTimeout
	if timeout <= 0 {
		timeout = DefaultQueueTimeout
	}
	var deadline <-chan time.Time
	p.queued.Add(1)
	defer p.queued.Add(-1)
	for {
		p.mu.Lock()
		freed := p.freedLocked()
		p.mu.Unlock()

		if sticky {
			if inSnapshot(p.snap.Load(), full) {
				if full.tryAcquire() {
					return full, nil
				}
			} else { // the pinned server left: balance normally
				sticky = false
			}
		}
		if !sticky {
			cur := p.snap.Load()
			if cur != nil && len(info.Avoid) > 0 {
				cur = p.without(cur, info.Avoid)
			}
			if cur == nil || len(cur.Servers) == 0 {
				return nil, ErrNoServer
			}
			room := p.derive(cur, func(s *Server) bool { return !s.Full() })
			if room != cur || !allFull(cur) {
				s, err := p.pick(room, info)
				if err != nil {
					return nil, err
				}
				if s.tryAcquire() {
					return s, nil
				}
				continue // lost a race for the last slot; look again
			}
		}
		if deadline == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-freed:
		case <-deadline:
			return nil, ErrQueueTimeout
		case <-ctx.Done():
			return nil, fmt.Errorf("lb: queue: %w", context.Cause(ctx))
		}
	}
}

func inSnapshot(snap *Snapshot, s *Server) bool {
	if snap == nil {
		return false
	}
	for _, sv := range snap.Servers {
		if sv.rt == s.rt {
			return true
		}
	}
	return false
}

func allFull(s *Snapshot) bool {
	for _, sv := range s.Servers {
		if !sv.Full() {
			return false
		}
	}
	return true
}

// connect acquires a server and opens a connection to it, retrying failed
// attempts on other servers. info describes the client for the PROXY header;
// it may be nil.
func (p *Pool) connect(ctx context.Context, pi PickInfo, info *ConnInfo) (net.Conn, Lease, error) {
	retries := p.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	for attempt := 0; ; attempt++ {
		lease, err := p.Acquire(ctx, pi)
		if err != nil {
			return nil, Lease{}, err
		}
		c, err := p.dial(ctx, lease.Server, info, false)
		if err == nil {
			return c, lease, nil
		}
		lease.Done(Outcome{Err: err, Connect: true})
		p.logger().LogAttrs(ctx, slog.LevelDebug, "connect failed",
			slog.String("pool", p.Name), slog.String("server", lease.Server.Name),
			slog.Int("attempt", attempt+1), slog.Any("error", err))
		if attempt >= retries || ctx.Err() != nil {
			return nil, Lease{}, err
		}
		pi.Avoid = append(pi.Avoid, lease.Server)
	}
}

// dial opens one connection to s and writes the PROXY header, within the
// connect timeout.
// Unless plain, it then runs the TLS handshake of Pool.TLS.
func (p *Pool) dial(ctx context.Context, s *Server, info *ConnInfo, plain bool) (net.Conn, error) {
	timeout := p.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c net.Conn
	var err error
	if p.Dial != nil {
		c, err = p.Dial(dctx, "tcp", s.Addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(dctx, "tcp", s.Addr)
	}
	if err != nil {
		return nil, &ConnectError{Server: s.Name, Err: err}
	}
	if p.ProxyHeader != nil {
		deadline, _ := dctx.Deadline()
		c.SetWriteDeadline(deadline)
		if err := p.ProxyHeader(c, info, s); err != nil {
			c.Close()
			return nil, &ConnectError{Server: s.Name, Err: fmt.Errorf("proxy header: %w", err)}
		}
		c.SetWriteDeadline(time.Time{})
	}
	if p.TLS != nil && !plain {
		tc := tls.Client(c, p.clientTLS(info, s))
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, &ConnectError{Server: s.Name, Err: fmt.Errorf("tls: %w", err)}
		}
		c = tc
	}
	return c, nil
}

// clientTLS returns the TLS configuration for a connection to s: Pool.TLS
// with the server name chosen as TLS documents. It copies the config only
// when the name differs from the configured one.
func (p *Pool) clientTLS(info *ConnInfo, s *Server) *tls.Config {
	name := ""
	if p.TLSServerName != nil {
		name = p.TLSServerName(info, s)
	}
	if name == "" {
		name = p.TLS.ServerName
	}
	if name == "" {
		if host, _, err := net.SplitHostPort(s.Addr); err == nil {
			name = host
		}
	}
	if name == p.TLS.ServerName {
		return p.TLS
	}
	c := p.TLS.Clone()
	c.ServerName = name
	return c
}

// ConnectError reports a failure to connect to a server: nothing of the
// client's was sent, so the attempt can be retried elsewhere.
type ConnectError struct {
	Server string
	Err    error
}

func (e *ConnectError) Error() string { return "lb: connect to " + e.Server + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Timeout reports whether the attempt timed out.
func (e *ConnectError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// ServeConn proxies the client connection c to a server of the pool, with
// retries on connection failure, and copies bytes both ways until both
// directions end or TunnelTimeout passes without traffic. When no server is
// pickable the connection goes to Fallback, or is closed.
func (p *Pool) ServeConn(ctx context.Context, c *Conn) {
	sc, lease, err := p.connect(ctx, c.Info.PickInfo(), &c.Info)
	if err != nil {
		if errors.Is(err, ErrNoServer) && p.Fallback != nil {
			p.Fallback.ServeConn(ctx, c)
			return
		}
		p.logger().LogAttrs(ctx, slog.LevelDebug, "no server for connection",
			slog.String("pool", p.Name), slog.String("client", c.Info.Remote.String()), slog.Any("error", err))
		c.Close()
		return
	}
	idle := p.TunnelTimeout
	if idle == 0 {
		idle = DefaultTunnelTimeout
	} else if idle < 0 {
		idle = 0
	}
	c.SetReadDeadline(time.Time{}) // the frontend's handshake deadline
	client, pending := unwrapConn(c)
	sctx, done := p.sessionContext(ctx, lease.Server)
	up, down, err := pipe.Proxy(sctx, client, sc, pipe.Options{Idle: idle, ClientPending: pending})
	done()
	lease.Done(Outcome{Err: err, Sent: up, Received: down})
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

// DialContext opens a connection to a server of the pool, ignoring network
// and addr: it balances client-side, for http.Transport.DialContext or a
// database driver. Failed attempts are retried on other servers. The server
// stays active until the returned connection is closed.
func (p *Pool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, lease, err := p.connect(ctx, PickInfo{}, nil)
	if err != nil {
		return nil, err
	}
	return &leasedConn{Conn: c, lease: lease}, nil
}

// leasedConn ends its Lease when closed.
type leasedConn struct {
	net.Conn
	lease Lease
	once  sync.Once
}

func (c *leasedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lease.Done(Outcome{}) })
	return err
}
