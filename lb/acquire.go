package lb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Lease is one use of a server, from Acquire to Done. It is a small value;
// call Done exactly once.
type Lease struct {
	// Server is the server chosen.
	Server *Server
	// Sticky reports that Affinity chose the server.
	Sticky bool
	// Moved reports that the client was pinned to a server that could not
	// be used, so the Balancer chose the server and the client is
	// re-pinned: the Affinity's PinReporter said so (the server is down,
	// draining or removed), or the pinned server left the pool while the
	// client waited in its queue. An Affinity without PinReporter cannot
	// tell such a client from a new one.
	Moved bool

	pool  *Pool
	start int64 // monotonic clock at the pick (monoNow)
}

// Done ends the use of the server and reports how it went to the pool's
// statistics and Observers. o.Duration is filled in when zero.
func (l Lease) Done(o Outcome) {
	if l.pool == nil {
		return
	}
	l.report(o)
	l.pool.release(l.Server)
}

// again reports a failed attempt as Done does, but keeps the server and
// its slot for the next attempt of the same connection or request: a
// retry on the same server (Pool.RedispatchEvery). It returns the lease
// of that attempt, timed from now.
func (l Lease) again(o Outcome) Lease {
	l.report(o)
	l.start = monoNow()
	return l
}

// report counts the end of the lease's use of its server in the
// statistics and tells the Observers.
func (l Lease) report(o Outcome) {
	d := l.since()
	if o.Duration == 0 {
		o.Duration = d
	}
	if o.Failed() {
		l.Server.rt.failures.Add(1)
	}
	l.pool.count(l.Server, o, d)
	obsB, okB := l.pool.Balancer.(Observer)
	obsH, okH := l.pool.HealthChecker.(Observer)
	if okB || okH {
		if okB {
			obsB.Observe(l.Server, o)
		}
		if okH {
			obsH.Observe(l.Server, o)
		}
	}
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
	sticky, moved := false, false
	if pr, ok := p.Affinity.(PinReporter); ok {
		var pin PinState
		s, pin = pr.LookupPin(snap, info)
		sticky, moved = pin == PinHonoured && s != nil, pin == PinMoved
	} else if p.Affinity != nil {
		s, sticky = p.Affinity.Lookup(snap, info)
	}
	if !sticky {
		var err error
		if s, err = p.pick(snap, info); err != nil {
			return Lease{}, err
		}
	}
	if !s.tryAcquire() {
		pinned := s
		var err error
		if s, err = p.acquireSlow(ctx, snap, info, s, sticky); err != nil {
			return Lease{}, err
		}
		if sticky && s.rt != pinned.rt { // the pinned server left while queued
			sticky, moved = false, true
		}
	}
	s.rt.total.Add(1)
	setMax(&s.rt.traffic.max, s.rt.active.Load())
	setMax(&p.traffic.max, p.traffic.cur.Add(1))
	if p.Affinity != nil && !sticky {
		p.Affinity.Pin(info, s)
	}
	return Lease{Server: s, Sticky: sticky, Moved: moved, pool: p, start: monoNow()}, nil
}

// since returns the time since the pick.
func (l *Lease) since() time.Duration { return time.Duration(monoNow() - l.start) }

// count adds the end of a session on s, after d, to the statistics of s,
// which the pool's add up. L4 bytes are counted as they are copied, not
// here.
func (p *Pool) count(s *Server, o Outcome, d time.Duration) {
	st := &s.rt.traffic
	if o.Connect && o.Err != nil {
		st.connErrors.Add(1)
		return
	}
	if o.HTTP {
		st.requests.Add(1)
		switch {
		case o.Status != 0:
			st.responses.count(o.Status)
		case errors.Is(o.Err, context.Canceled), clientFault(o.Err):
			// The client left while the server thought, or its request
			// body failed on the way or came too slowly.
			st.cliAborts.Add(1)
		case o.Err != nil:
			st.respErrors.Add(1)
		}
		if o.Sent != 0 {
			st.bytesIn.Add(o.Sent)
		}
		if o.Received != 0 {
			st.bytesOut.Add(o.Received)
		}
	}
	st.totalTime.Observe(d)
}

// countRetry counts a failed connection attempt on s that is retried; it
// is called before the attempt's lease ends.
func countRetry(s *Server) { s.rt.traffic.retries.Add(1) }

// countRedispatch counts a retry that moved from the server that failed
// to another one.
func countRedispatch(failed, next *Server) {
	if failed != nil && failed.rt != next.rt {
		failed.rt.traffic.redispatches.Add(1)
	}
}

// countConnect counts the time of a successful connection to s.
func countConnect(s *Server, d time.Duration) { s.rt.traffic.connectTime.Observe(d) }

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
	d := &Snapshot{Servers: kept, Version: snap.Version, Backup: snap.Backup, active: snap.active}
	p.prepare(d)
	return d
}

// acquireSlow handles a chosen server at its MaxConns: pick among servers
// with room, else queue. A client pinned to a full server waits for it.
func (p *Pool) acquireSlow(ctx context.Context, snap *Snapshot, info PickInfo, full *Server, sticky bool) (s *Server, err error) {
	timeout := p.queueTimeout()
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
			var pinned *Server
			if sticky {
				pinned = full
			}
			defer p.enqueue(pinned)(&s)
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

// enqueue counts one session entering the queue, waiting for any server or,
// when pinned is set, for that one. The returned function counts it
// leaving, with the server it got, if any.
func (p *Pool) enqueue(pinned *Server) func(got **Server) {
	start := time.Now()
	setMax(&p.traffic.queueMax, p.traffic.queueCur.Add(1))
	if pinned != nil {
		setMax(&pinned.rt.traffic.queueMax, pinned.rt.traffic.queueCur.Add(1))
	}
	return func(got **Server) {
		d := time.Since(start)
		p.traffic.queueCur.Add(-1)
		p.traffic.queueTime.Observe(d)
		if pinned != nil {
			pinned.rt.traffic.queueCur.Add(-1)
		}
		if s := *got; s != nil {
			s.rt.traffic.queueTime.Observe(d)
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
