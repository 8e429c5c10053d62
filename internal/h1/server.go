package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/internal/gopool"
	"github.com/lbkit/lbkit/internal/park"
)

// DefaultHotWindow is how long a keep-alive connection of a Server waits
// for its next request on its goroutine, with its read buffer, before it
// is parked without either.
const DefaultHotWindow = 100 * time.Millisecond

// Server is the server side of the engine: an HTTP/1.1 server for
// proxied traffic, configured from an http.Server and serving its
// Handler, with less memory per idle keep-alive connection than net/http.
//
// It reads Config's Handler, ReadHeaderTimeout, ReadTimeout,
// WriteTimeout, IdleTimeout, MaxHeaderBytes, ConnState, ConnContext,
// BaseContext, ErrorLog, TLSConfig, TLSNextProto (HTTP/2 over TLS through
// ALPN, and with Protocols' UnencryptedHTTP2 prior knowledge, both as
// lb.ConfigureHTTP2 sets them up) and Protocols, and calls the ConnState
// hooks in net/http's order: New, Active, Idle, then Hijacked or Closed.
// Requests are parsed at least as strictly as net/http's server does, with
// the same error statuses (400, 431, 501, 505, 417).
//
// Between requests, a plain TCP connection waits HotWindow on its
// goroutine, then is parked (package internal/park): no goroutine, no
// buffer, until its socket is readable or IdleTimeout passes. Read and
// write buffers come from pools while a request is served. A request's
// context is cancelled when the client closes its connection once the
// body was read, as with net/http, through an epoll watcher of the
// connections (one registration per connection).
//
// Set the fields before Serve and do not change them afterwards; the
// methods are safe for concurrent use.
type Server struct {
	// Config is the http.Server whose settings apply. It must not be nil.
	// Its Serve methods are not called.
	Config *http.Server

	// Logger receives the engine's own events (TLS handshake errors at
	// Debug) and, when Config.ErrorLog is nil, net/http's messages (a
	// handler's panic). Nil means slog.Default().
	Logger *slog.Logger

	// HotWindow is how long a keep-alive connection keeps its goroutine
	// before it is parked. Zero means DefaultHotWindow; negative means
	// never park (every idle connection keeps a goroutine, as net/http).
	HotWindow time.Duration

	// QuickAck keeps the kernel's quick ACKs on the listener's accepted
	// connections. By default Serve turns them off on Linux (TCP_QUICKACK),
	// as HAProxy's "option tcp-smart-accept" does in HTTP mode: the ACK of
	// a request then rides on its response instead of taking a packet of
	// its own, one packet less per new connection. It sets the listener's
	// socket, which accepted sockets inherit, when the listener is a plain
	// TCP one (not Go's default MPTCP, which refuses the option) that
	// exposes it (syscall.Conn); otherwise each accepted socket, one
	// setsockopt per connection. A client that sends its request in
	// several small writes without TCP_NODELAY may then wait for the
	// kernel's delayed ACK (up to about 40 ms) between them; set QuickAck
	// for such clients.
	QuickAck bool

	parkOnce sync.Once
	parker   *park.Parker

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*srvConn]struct{}
	closing   atomic.Bool
	listenWG  sync.WaitGroup
}

func (s *Server) cfg() *http.Server { return s.Config }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// logf logs a net/http message: to Config.ErrorLog when set, else to
// Logger at Error.
func (s *Server) logf(format string, args ...any) {
	if l := s.cfg().ErrorLog; l != nil {
		l.Printf(format, args...)
		return
	}
	s.logger().Error(fmt.Sprintf(format, args...))
}

func (s *Server) hotWindow() time.Duration {
	if s.HotWindow == 0 {
		return DefaultHotWindow
	}
	return s.HotWindow
}

func (s *Server) headerTimeout() time.Duration {
	if d := s.cfg().ReadHeaderTimeout; d > 0 {
		return d
	}
	return s.cfg().ReadTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if d := s.cfg().IdleTimeout; d != 0 {
		return d
	}
	return s.cfg().ReadTimeout
}

func (s *Server) maxHeaderBytes() int {
	if n := s.cfg().MaxHeaderBytes; n > 0 {
		return n
	}
	return http.DefaultMaxHeaderBytes
}

// handshakeTimeout is net/http's: the smallest positive of the header,
// read and write timeouts.
func (s *Server) handshakeTimeout() time.Duration {
	var ret time.Duration
	cfg := s.cfg()
	for _, v := range [...]time.Duration{cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout} {
		if v > 0 && (ret == 0 || v < ret) {
			ret = v
		}
	}
	return ret
}

// protocols is Config.Protocols, with net/http's default (HTTP/1 and, over
// TLS, HTTP/2).
func (s *Server) protocols() http.Protocols {
	if p := s.cfg().Protocols; p != nil {
		return *p
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return p
}

// handler is the handler for r: Config.Handler (nil: http.DefaultServeMux),
// and net/http's answer to "OPTIONS *".
func (s *Server) handler(r *http.Request) http.Handler {
	if r.RequestURI == "*" && r.Method == "OPTIONS" && !s.cfg().DisableGeneralOptionsHandler {
		return optionsHandler{}
	}
	if h := s.cfg().Handler; h != nil {
		return h
	}
	return http.DefaultServeMux
}

type optionsHandler struct{}

func (optionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) shuttingDown() bool { return s.closing.Load() }

// Serve accepts connections on ln and serves them until Shutdown or Close,
// after which it returns http.ErrServerClosed. Over a listener of
// *tls.Conn (ServeTLS's), TLS is served with ALPN.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, s.QuickAck || delayAcks(ln))
}

// serve is Serve; acksSet tells that ln's sockets need no ACK setting of
// their own: the listener delayed them, or QuickAck keeps the default.
// Otherwise each accepted connection's ACKs are delayed on its socket (a
// listener that hides its socket: a wrapper, a handoff of connections).
func (s *Server) serve(ln net.Listener, acksSet bool) error {
	if s.Config == nil {
		return errors.New("h1: Server.Config is nil")
	}
	if !s.trackListener(&ln, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	cfg := s.cfg()
	base := context.Background()
	if cfg.BaseContext != nil {
		base = cfg.BaseContext(ln)
		if base == nil {
			panic("BaseContext returned a nil context")
		}
	}
	base = context.WithValue(base, http.ServerContextKey, cfg)
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("h1: accept: %w", err)
		}
		delay = 0
		if !acksSet {
			delayConnAcks(rw) // before the hooks see the connection
		}
		ctx := context.WithValue(base, http.LocalAddrContextKey, rw.LocalAddr())
		if cfg.ConnContext != nil {
			ctx = cfg.ConnContext(ctx, rw)
			if ctx == nil {
				panic("ConnContext returned nil")
			}
		}
		c := s.newConn(ctx, rw)
		c.setState(http.StateNew, true)
		gopool.Go(c) // a worker whose stack serving has grown
	}
}

// newConn sets up a connection and tracks it.
func (s *Server) newConn(ctx context.Context, rw net.Conn) *srvConn {
	c := &srvConn{srv: s, rwc: rw, remote: rw.RemoteAddr().String(), ctx: ctx}
	c.ready = c.wake
	sock := rw
	if tc, ok := rw.(*tls.Conn); ok {
		sock = tc.NetConn()
		c.overTLS = true
	}
	if sc, ok := sock.(syscall.Conn); ok {
		c.sock, _ = sc.SyscallConn()
		c.parkable = sock == rw
	}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = make(map[*srvConn]struct{})
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.watch(c)
	return c
}

// forget stops tracking c (closed or hijacked).
func (s *Server) forget(c *srvConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shuttingDown() {
			return false
		}
		if s.listeners == nil {
			s.listeners = make(map[*net.Listener]struct{})
		}
		s.listeners[ln] = struct{}{}
		s.listenWG.Add(1)
		return true
	}
	delete(s.listeners, ln)
	s.listenWG.Done()
	return true
}

// ServeTLS serves HTTPS on ln with Config.TLSConfig (cloned), to which it
// adds "http/1.1" to the ALPN protocols and, when certFile and keyFile
// are set, their certificate, as http.Server.ServeTLS does. Connections
// that negotiate a protocol of Config.TLSNextProto ("h2" after
// lb.ConfigureHTTP2) are handed to it.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	if s.Config == nil {
		return errors.New("h1: Server.Config is nil")
	}
	config := s.cfg().TLSConfig.Clone()
	if config == nil {
		config = &tls.Config{}
	}
	if s.protocols().HTTP1() && !slices.Contains(config.NextProtos, "http/1.1") {
		config.NextProtos = append(config.NextProtos, "http/1.1")
	}
	hasCert := len(config.Certificates) > 0 || config.GetCertificate != nil || config.GetConfigForClient != nil
	if !hasCert || certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("h1: loading the certificate: %w", err)
		}
		config.Certificates = append(config.Certificates, cert)
	}
	// The TLS listener hides the socket: its ACKs are set here.
	return s.serve(tls.NewListener(ln, config), s.QuickAck || delayAcks(ln))
}

// shutdownPoll is the longest wait between two looks at the connections
// during Shutdown (net/http's).
const shutdownPoll = 500 * time.Millisecond

// Shutdown stops the listeners, closes idle connections (parked ones too)
// and waits for the active ones to finish their request, as
// http.Server.Shutdown does. It returns ctx's error if ctx ends first;
// Close then ends what is left. Hijacked connections are not tracked.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	s.mu.Unlock()
	s.listenWG.Wait()
	// The http.Server never served: its Shutdown runs its
	// RegisterOnShutdown functions (HTTP/2's graceful GOAWAY) and returns.
	s.cfg().Shutdown(ctx)
	interval := time.Millisecond
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		if s.closeIdle() {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			interval = min(2*interval, shutdownPoll)
			timer.Reset(interval)
		}
	}
}

func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	var idle []*srvConn
	quiet := true
	for c := range s.conns {
		st, sec := c.getState()
		if st == http.StateNew && sec < time.Now().Unix()-5 {
			st = http.StateIdle
		}
		if st != http.StateIdle || sec == 0 {
			quiet = false
			continue
		}
		idle = append(idle, c)
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.closeIdle()
	}
	return quiet && len(idle) == 0 || quiet && s.empty()
}

func (s *Server) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) == 0
}

// closeIdle closes an idle connection: a parked one once its registration
// is cancelled (or its wake-up sees the shutdown), one in its hot window
// by closing the socket under its read.
func (c *srvConn) closeIdle() {
	c.mu.Lock()
	if c.parked {
		if c.ticket.Cancel() {
			c.parked = false
			c.mu.Unlock()
			c.close()
			return
		}
		c.mu.Unlock()
		return // waking: it sees the shutdown
	}
	c.mu.Unlock()
	c.rwc.Close()
}

// Close closes the listeners and every connection at once, as
// http.Server.Close does.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	conns := make([]*srvConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.listenWG.Wait()
	for _, c := range conns {
		c.mu.Lock()
		if c.parked && c.ticket.Cancel() {
			c.parked = false
			c.mu.Unlock()
			c.close()
			continue
		}
		c.mu.Unlock()
		c.rwc.Close()
	}
	return err
}

// Conns returns the number of connections the Server tracks and how many
// of them are parked; for statistics and tests.
func (s *Server) Conns() (total, parked int) {
	s.mu.Lock()
	total = len(s.conns)
	s.mu.Unlock()
	return total, s.park().Len()
}

func (s *Server) park() *park.Parker {
	s.parkOnce.Do(func() { s.parker = park.New() })
	return s.parker
}
