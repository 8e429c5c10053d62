package lb

import (
	"context"
	"errors"
	"sync"
)

// ErrServerDown is the cause of the sessions a Pool with ShutdownOnDown
// closes when their server goes down.
var ErrServerDown = errors.New("lb: server down")

// sessionSet holds the stop functions of a server's open sessions.
type sessionSet struct {
	mu sync.Mutex
	m  map[*session]struct{}
}

type session struct{ stop func() }

// insert registers a session.
func (ss *sessionSet) insert(s *session) {
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = make(map[*session]struct{})
	}
	ss.m[s] = struct{}{}
	ss.mu.Unlock()
}

// remove unregisters a session; it is a no-op once take has returned it.
func (ss *sessionSet) remove(s *session) {
	ss.mu.Lock()
	delete(ss.m, s)
	ss.mu.Unlock()
}

// take unregisters every session and returns their stop functions.
func (ss *sessionSet) take() []func() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	stops := make([]func(), 0, len(ss.m))
	for s := range ss.m {
		stops = append(stops, s.stop)
	}
	clear(ss.m)
	return stops
}

// sessionContext returns the context of one L4 session on s: with
// ShutdownOnDown, it is cancelled with ErrServerDown when s goes down. Call
// done when the session ends.
func (p *Pool) sessionContext(ctx context.Context, s *Server) (_ context.Context, done func()) {
	if !p.ShutdownOnDown {
		return ctx, func() {}
	}
	sctx, cancel := context.WithCancelCause(ctx)
	sess := &session{stop: func() { cancel(ErrServerDown) }}
	s.rt.sessions.insert(sess)
	return sctx, func() {
		s.rt.sessions.remove(sess)
		cancel(nil)
	}
}

// trackStream registers an upgraded stream of s, to be closed when s goes
// down with ShutdownOnDown, and sets its untrack function.
func (p *Pool) trackStream(s *Server, st *leasedStream) {
	if !p.ShutdownOnDown {
		st.untrack = func() {}
		return
	}
	set := &s.rt.sessions
	sess := &session{stop: func() { st.Close() }}
	st.untrack = func() { set.remove(sess) } // set before insert publishes st
	set.insert(sess)
}
