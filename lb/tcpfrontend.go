package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFrontendClosed is returned by a Frontend's Serve after Shutdown or
// Close. It is the same value as [http.ErrServerClosed], so one comparison
// serves a [TCPFrontend] and an [*http.Server] alike; the name says
// "frontend" because in lb a [Server] is always an upstream.
var ErrFrontendClosed = http.ErrServerClosed

// DefaultHandshakeTimeout bounds the time a TCPFrontend gives a new connection
// to produce what its Backend chain peeks at (a ClientHello) before it is
// handed on, and a TLS handshake that an adapter runs (tlsmode.Offload).
const DefaultHandshakeTimeout = 10 * time.Second

// TCPFrontend is the L4 frontend: it accepts connections on listeners and
// hands each one, wrapped in a [*Conn], to its [Backend] in a goroutine of its
// own. It mirrors [http.Server]: Serve, Shutdown, Close and [ErrFrontendClosed]
// behave the same way, and every connection is tracked until its Backend
// returns or, when a [Pool] left the session on its event loop (see
// [Pool.ServeConn]), until that session ends: Shutdown waits for it, Close
// ends it, and ConnCur counts it.
//
// Configure the exported fields before calling Serve.
type TCPFrontend struct {
	// Name names the frontend in ConnInfo and logs.
	Name string

	// Backend serves each connection. It must close the connection, or
	// leave it to a session that outlives ServeConn (see Backend).
	Backend Backend

	// HandshakeTimeout is set as the connection's read deadline before the
	// Backend is called, bounding what adapters peek or handshake; the
	// adapters clear it once done (Pool clears it when it proxies). Zero
	// means DefaultHandshakeTimeout; negative means none.
	HandshakeTimeout time.Duration

	// BaseContext returns the base context of the connections accepted on
	// ln. Nil means context.Background().
	BaseContext func(ln net.Listener) context.Context

	// ConnContext derives the context of one connection from the base
	// context. Nil means the base context itself.
	ConnContext func(ctx context.Context, c net.Conn) context.Context

	// Logger receives accept errors and panics; nil means slog.Default().
	Logger *slog.Logger

	// AccessLog, when set, receives one AccessRecord per session that a
	// Pool served (Pool.ServeConn), when the session ends. Nil, the
	// default, builds no record.
	AccessLog AccessLogger

	// Limits, when set, applies to the connections of every listener
	// Serve is given: Serve stops accepting while MaxConns connections
	// are open, and closes a connection at once when its client is over
	// ClientMaxConns or ClientRate (connections per second), counting it
	// in Stats' Denied. Serve wraps the listener it gets, so the limits
	// see the client address of any wrapper below (such as a
	// proxyproto.Listener). Nil, the default, limits nothing.
	Limits *Limits

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*Conn]context.CancelFunc
	connWG    sync.WaitGroup
	closed    atomic.Bool
	done      chan struct{} // closed by Close or Shutdown
	stats     frontendStats
}

func (s *TCPFrontend) init() {
	if s.conns == nil {
		s.conns = make(map[*Conn]context.CancelFunc)
		s.listeners = make(map[*net.Listener]struct{})
		s.done = make(chan struct{})
	}
}

// Serve accepts connections on ln until Shutdown or Close, then returns
// ErrFrontendClosed; any other accept error is returned as is, after
// temporary errors have been retried with back-off. Serve closes ln.
func (s *TCPFrontend) Serve(ln net.Listener) error {
	if s.Backend == nil {
		return errors.New("lb: TCPFrontend has no Backend")
	}
	s.mu.Lock()
	s.init()
	if s.closed.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrFrontendClosed
	}
	if s.Limits != nil {
		ln = s.Limits.listener(ln, &s.stats)
	}
	s.listeners[&ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		s.mu.Unlock()
		ln.Close()
	}()

	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(ln)
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closed.Load() {
				return ErrFrontendClosed
			}
			s.stats.errors.Add(1)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().LogAttrs(base, slog.LevelWarn, "accept error; retrying",
					slog.String("frontend", s.Name), slog.Duration("delay", backoff), slog.Any("error", err))
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(nc, base) {
			nc.Close()
			return ErrFrontendClosed
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers nc and starts its goroutine; false after Close/Shutdown.
func (s *TCPFrontend) track(nc net.Conn, base context.Context) bool {
	ctx := base
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, nc)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := NewConn(nc, s.Name)
	c.fe = &s.stats
	c.access = s.AccessLog
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		cancel()
		return false
	}
	s.conns[c] = cancel
	s.connWG.Add(1)
	s.mu.Unlock()
	// A Limits.ClientRater decision still due is taken on the
	// connection's goroutine, so that a slow rater never holds up
	// accepting; the connection counts as open once admitted.
	pending := findLimitedConn(nc)
	if pending != nil && !pending.rateDue {
		pending = nil
	}
	if pending == nil {
		s.stats.open(c.Info.Accepted)
	}
	go s.serveConn(ctx, c, pending)
	return true
}

// serveConn runs the Backend for one connection and untracks it once the
// Backend has returned and the session it may have left running (see
// connHold) has ended. With pending set, the connection's ClientRater
// decision comes first: a refused connection is closed, counted in
// Denied, and never reaches the Backend.
func (s *TCPFrontend) serveConn(ctx context.Context, c *Conn, pending *limitedConn) {
	h := &connHold{fe: s, c: c, opened: pending == nil}
	h.refs.Store(1)
	c.hold = h
	defer func() {
		if r := recover(); r != nil {
			s.stats.errors.Add(1)
			s.logger().LogAttrs(ctx, slog.LevelError, "panic serving connection",
				slog.String("frontend", s.Name), slog.String("client", c.Info.Remote.String()),
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
		h.release()
	}()
	if pending != nil {
		if !pending.decideRate(ctx) {
			s.stats.denied.Add(1)
			return
		}
		s.stats.open(c.Info.Accepted)
		h.opened = true
	}
	if t := s.handshakeTimeout(); t > 0 {
		c.SetReadDeadline(time.Now().Add(t))
	}
	s.Backend.ServeConn(ctx, c)
}

// connHold keeps a connection of a TCPFrontend tracked (counted in
// ConnCur, waited for by Shutdown, closed by Close) while anything holds
// it: the connection's goroutine until its Backend returns, and a Pool's
// session that the event loop carries on after ServeConn returned
// (Pool.ServeConn). The last release untracks the connection.
type connHold struct {
	refs   atomic.Int32
	fe     *TCPFrontend
	c      *Conn
	opened bool // counted in ConnCur
}

// acquire adds a holder; h may be nil (a Conn of no TCPFrontend).
func (h *connHold) acquire() {
	if h != nil {
		h.refs.Add(1)
	}
}

// release removes a holder and untracks the connection after the last.
func (h *connHold) release() {
	if h == nil || h.refs.Add(-1) != 0 {
		return
	}
	s, c := h.fe, h.c
	// Uncounted before the close, which lets Limits accept the next
	// connection: ConnCur never exceeds Limits.MaxConns.
	if h.opened {
		s.stats.cur.Add(-1)
	}
	c.Close()
	s.mu.Lock()
	cancel := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	cancel()
	s.connWG.Done()
}

// Shutdown stops accepting, then waits for every open connection to end, or
// for ctx to be done, in which case it returns ctx's error and leaves the
// remaining connections open (call Close to end them), as http.Server does.
func (s *TCPFrontend) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	idle := make(chan struct{})
	go s.waitConns(idle)
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitConns closes idle when the last tracked connection has ended.
func (s *TCPFrontend) waitConns(idle chan<- struct{}) {
	s.connWG.Wait()
	close(idle)
}

// Close stops accepting and closes every open connection now, cancelling
// their contexts. It returns once they are closed, not when their Backends
// have returned.
func (s *TCPFrontend) Close() error {
	s.stopAccepting()
	s.mu.Lock()
	for c, cancel := range s.conns {
		cancel()
		c.Close()
	}
	s.mu.Unlock()
	return nil
}

func (s *TCPFrontend) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.closed.Swap(true) {
		return
	}
	close(s.done)
	for ln := range s.listeners {
		(*ln).Close()
	}
}

// ActiveConns reports the connections being served.
func (s *TCPFrontend) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// handshakeTimeout is HandshakeTimeout with its default applied, 0 for none.
func (s *TCPFrontend) handshakeTimeout() time.Duration {
	return withDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)
}

func (s *TCPFrontend) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
