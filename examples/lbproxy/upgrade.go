package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/upgrade"
)

// Binary upgrade (-upgrade-socket PATH, lb/upgrade): a new lbproxy started
// with the same PATH takes the listening sockets of the one serving PATH
// (the frontend's TCP socket, its HTTP/3 UDP socket, the admin socket),
// tells it to drain once it serves them, and serves PATH for the next
// upgrade. The old process stops accepting at once (its listeners are
// paused), waits for the first request of the HTTP connections it
// accepted shortly before (settle), drains its connections for -grace, as
// on SIGTERM, and exits; in -config mode too, where the runtime's HTTP
// servers report their connections through RuntimeOptions.ConnState.
// No connection is refused: both processes hold the same sockets, so
// connections queued in the kernel wait for whichever accepts. SIGUSR2
// starts the new process from lbproxy's own executable file (replaced by
// the new binary) with the same arguments.
//
// A new process that fails before it serves (a bad flag, a port it cannot
// have), or whose readiness the old one does not acknowledge (it gave up
// waiting, -upgrade-socket's ReadyTimeout), exits and leaves the old one
// serving.

// sockets opens lbproxy's listening sockets: through the Upgrader of
// -upgrade-socket, or fresh.
type sockets struct {
	lc      net.ListenConfig  // fresh sockets: with -freebind's control
	up      *upgrade.Upgrader // nil: no -upgrade-socket
	readyAt atomic.Int64      // when ready returned, in Unix nanoseconds; 0: not yet

	mu        sync.Mutex
	listeners []*pausable // every listener opened, paused on upgrade

	// With -upgrade-socket, trackFresh keeps in freshConn the HTTP
	// connections whose first request has not been read yet, with the
	// time they were accepted, and fresh counts them; settle waits for
	// the recent ones. lastAccept is when a listener last returned a
	// connection, in Unix nanoseconds: settle also gives that one time to
	// reach its server.
	lastAccept atomic.Int64
	fresh      atomic.Int64
	freshMu    sync.Mutex
	freshConn  map[net.Conn]int64
}

// settleMax bounds the wait, on upgrade, for the first request of the
// connections accepted just before accepting stopped.
const settleMax = 2 * time.Second

// startUpgrade returns lbproxy's sockets. With -upgrade-socket it first
// takes those of the lbproxy serving that socket, if one does; the caller
// closes the Upgrader (sockets.close) when done.
func startUpgrade(ctx context.Context, cfg *config, logger *slog.Logger, out io.Writer) (*sockets, error) {
	var lc net.ListenConfig
	// Plain TCP, not Go's default MPTCP, whose listening sockets refuse
	// the delayed ACKs lb.HTTPFrontend sets (its QuickAck).
	lc.SetMultipathTCP(false)
	if cfg.freebind {
		lc.Control = setFreebind
	}
	// -client-tcp-keepalive, on fresh and inherited sockets alike (keepalive.go)
	lb.ListenKeepAlive(&lc, tcpKeepAlive(cfg.clientTCPKeepAlive))
	if cfg.upgradeSocket == "" {
		return &sockets{lc: lc}, nil
	}
	s := &sockets{lc: lc}
	up := &upgrade.Upgrader{Path: cfg.upgradeSocket, Logger: logger, ListenConfig: lc}
	if err := up.Start(ctx); err != nil {
		return nil, fmt.Errorf("lbproxy: -upgrade-socket: %w", err)
	}
	s.up = up
	if taken := up.Inherited(); len(taken) > 0 {
		fmt.Fprintf(out, "lbproxy: pid %d takes over %v from the running process\n", os.Getpid(), taken)
	} else {
		fmt.Fprintf(out, "lbproxy: pid %d, no running process on %s\n", os.Getpid(), cfg.upgradeSocket)
	}
	return s, nil
}

// Listen opens a listener, inherited when the previous process had it.
func (s *sockets) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	if s.up == nil {
		return s.lc.Listen(ctx, network, addr)
	}
	ln, err := s.up.Listen(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	p := &pausable{Listener: ln, accepted: &s.lastAccept, paused: make(chan struct{}), closed: make(chan struct{})}
	s.mu.Lock()
	s.listeners = append(s.listeners, p)
	s.mu.Unlock()
	return p, nil
}

// ListenPacket is Listen for UDP sockets.
func (s *sockets) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	if s.up == nil {
		return s.lc.ListenPacket(ctx, network, addr)
	}
	return s.up.ListenPacket(ctx, network, addr)
}

// ready is called once lbproxy serves its sockets: it tells the previous
// process to drain, serves -upgrade-socket for the next upgrade, and from
// then on calls drain (stopping lbproxy gracefully) when a successor is
// ready, and starts a successor on SIGUSR2. Its goroutine ends with ctx.
func (s *sockets) ready(ctx context.Context, wg *sync.WaitGroup, drain context.CancelFunc, logger *slog.Logger, out io.Writer) error {
	if s.up == nil {
		return nil
	}
	if err := s.up.Ready(ctx); err != nil {
		// The previous process serves on (upgrade.ErrPredecessor: it did
		// not acknowledge): this one stops, its listeners closed, which
		// leaves the shared sockets open.
		return fmt.Errorf("lbproxy: -upgrade-socket: %w", err)
	}
	s.readyAt.Store(time.Now().UnixNano())
	fmt.Fprintf(out, "lbproxy: serving upgrades on %s\n", s.up.Path)
	var usr2 chan os.Signal // nil where there is no SIGUSR2
	if successorSignal != nil {
		usr2 = make(chan os.Signal, 1)
		signal.Notify(usr2, successorSignal)
	}
	wg.Go(func() {
		defer signal.Stop(usr2)
		for {
			select {
			case <-s.up.Upgraded():
				fmt.Fprintf(out, "lbproxy: pid %d: a new process serves; draining\n", os.Getpid())
				s.pauseAll()
				s.settle(ctx)
				drain()
				return
			case <-usr2:
				startSuccessor(logger)
			case <-ctx.Done():
				return
			}
		}
	})
	return nil
}

// sharedAccept reports whether the previous process may still accept
// connections on the inherited sockets: from the start until window after
// it was told to drain (it stops accepting soon after). Checks of the
// accept path then cannot tell a connection it took from a lost one.
func (s *sockets) sharedAccept(window time.Duration) bool {
	if s.up == nil || len(s.up.Inherited()) == 0 {
		return false
	}
	at := s.readyAt.Load()
	return at == 0 || time.Since(time.Unix(0, at)) < window
}

// pauseAll stops accepting on every listener: the new process accepts
// what the kernel queues from now on.
func (s *sockets) pauseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.listeners {
		p.pause()
	}
}

// trackFresh returns an http.Server.ConnState hook that, with
// -upgrade-socket, keeps the connections accepted whose first request has
// not been read yet (for settle), then calls next (nil: none); without
// -upgrade-socket it returns next. It costs a map insertion and deletion
// under a mutex per connection. Connections are known by the net.Conn
// StateNew reports; HTTP/2 (over TLS or h2c) reports its later states with
// a connection whose NetConn method leads to it (freshKey). QUIC
// connections, from HTTP/3, have no accept queue and stay in StateNew:
// they are not kept. In -config mode it is the runtime's
// RuntimeOptions.ConnState.
func (s *sockets) trackFresh(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	if s.up == nil {
		return next // no upgrade, no cost
	}
	return func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			if c.LocalAddr().Network() != "udp" {
				s.freshMu.Lock()
				if s.freshConn == nil {
					s.freshConn = make(map[net.Conn]int64)
				}
				if _, dup := s.freshConn[c]; !dup {
					s.freshConn[c] = time.Now().UnixNano()
					s.fresh.Add(1)
				}
				s.freshMu.Unlock()
			}
		} else if s.fresh.Load() > 0 {
			s.freshMu.Lock()
			if k, ok := s.freshKey(c); ok {
				delete(s.freshConn, k)
				s.fresh.Add(-1)
			}
			s.freshMu.Unlock()
		}
		if next != nil {
			next(c, st)
		}
	}
}

// freshKey returns the connection of freshConn that c is, or wraps: HTTP/2
// reports its states after StateNew with its own connection, whose
// NetConn method returns the one net/http accepted (lb.ConfigureHTTP2's
// checked connections do, as *tls.Conn does). s.freshMu is held.
func (s *sockets) freshKey(c net.Conn) (net.Conn, bool) {
	for range maxUnwrap {
		if _, ok := s.freshConn[c]; ok {
			return c, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		if c = u.NetConn(); c == nil {
			return nil, false
		}
	}
	return nil, false
}

// maxUnwrap bounds the NetConn methods freshKey follows.
const maxUnwrap = 8

// settle waits, for at most settleMax, until the HTTP connections
// accepted before accepting stopped, within settleMax before, have had
// their first request read: net/http's Shutdown closes a connection whose
// request it reads after it began, without an answer. A connection a
// listener returned less than acceptLag ago may not have reached its
// server's StateNew yet (in -config mode it goes through the runtime's
// accept loop first): settle waits until then too.
func (s *sockets) settle(ctx context.Context) {
	start := time.Now()
	deadline := start.Add(settleMax)
	since := start.Add(-settleMax).UnixNano()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		if time.Since(time.Unix(0, s.lastAccept.Load())) >= acceptLag && !s.waiting(since) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// acceptLag is the time settle gives a connection accepted just before
// the pause to be reported by its server.
const acceptLag = 100 * time.Millisecond

// waiting reports whether a connection accepted at or after since (Unix
// nanoseconds) still waits for its first request.
func (s *sockets) waiting(since int64) bool {
	if s.fresh.Load() == 0 {
		return false
	}
	s.freshMu.Lock()
	defer s.freshMu.Unlock()
	for _, at := range s.freshConn {
		if at >= since {
			return true
		}
	}
	return false
}

// pausable is a listener that can stop accepting without ending the
// server that serves it: pause closes its descriptor (the new process
// holds the socket), and Accept then waits for Close, which the server's
// Shutdown calls, to return net.ErrClosed.
type pausable struct {
	net.Listener
	accepted             *atomic.Int64 // set to the time of each connection returned
	paused, closed       chan struct{}
	pauseOnce, closeOnce sync.Once
}

// Accept returns the next connection, or waits for Close once paused.
func (l *pausable) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Store(time.Now().UnixNano())
	} else {
		select {
		case <-l.paused:
			<-l.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

// pause stops accepting.
func (l *pausable) pause() {
	l.pauseOnce.Do(func() {
		close(l.paused)
		l.Listener.Close()
	})
}

// Close ends a paused Accept, and closes the descriptor if pause did not.
func (l *pausable) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	select {
	case <-l.paused:
		return nil
	default:
		return l.Listener.Close()
	}
}

// close stops serving -upgrade-socket.
func (s *sockets) close() {
	if s.up != nil {
		s.up.Close()
	}
}

// startSuccessor starts lbproxy's executable file (the new binary, once
// it replaced the old one) with the arguments of this process, its
// standard output and error. The successor takes over through
// -upgrade-socket and outlives this process; a successor that fails leaves
// this process serving.
func startSuccessor(logger *slog.Logger) {
	exe, err := os.Executable()
	if err != nil {
		logger.Error("lbproxy: SIGUSR2: cannot find the executable", slog.Any("error", err))
		return
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		logger.Error("lbproxy: SIGUSR2: cannot start the new process", slog.Any("error", err))
		return
	}
	logger.Warn("lbproxy: SIGUSR2: started a new process", slog.String("exe", exe), slog.Int("pid", cmd.Process.Pid))
	go cmd.Wait() // reaps it if it fails while this process lives
}
