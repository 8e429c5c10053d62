package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb/upgrade"
)

// Binary upgrade (-upgrade-socket PATH, lb/upgrade): a new lbproxy started
// with the same PATH takes the listening sockets of the one serving PATH
// (the frontend's TCP socket, its HTTP/3 UDP socket, the admin socket),
// tells it to drain once it serves them, and serves PATH for the next
// upgrade. The old process stops accepting, drains its connections for
// -grace, as on SIGTERM, and exits. No connection is refused: both
// processes hold the same sockets, so connections queued in the kernel wait
// for whichever accepts. SIGUSR2 starts the new process from lbproxy's own
// executable file (replaced by the new binary) with the same arguments.
//
// A new process that fails before it serves (a bad flag, a port it cannot
// have) leaves the old one serving.

// sockets opens lbproxy's listening sockets: through the Upgrader of
// -upgrade-socket, or fresh.
type sockets struct {
	up      *upgrade.Upgrader // nil: no -upgrade-socket
	readyAt atomic.Int64      // when ready returned, in Unix nanoseconds; 0: not yet
}

// startUpgrade returns lbproxy's sockets. With -upgrade-socket it first
// takes those of the lbproxy serving that socket, if one does; the caller
// closes the Upgrader (sockets.close) when done.
func startUpgrade(ctx context.Context, cfg *config, logger *slog.Logger, out io.Writer) (*sockets, error) {
	if cfg.upgradeSocket == "" {
		return &sockets{}, nil
	}
	up := &upgrade.Upgrader{Path: cfg.upgradeSocket, Logger: logger}
	if err := up.Start(ctx); err != nil {
		return nil, fmt.Errorf("lbproxy: -upgrade-socket: %w", err)
	}
	if taken := up.Inherited(); len(taken) > 0 {
		fmt.Fprintf(out, "lbproxy: pid %d takes over %v from the running process\n", os.Getpid(), taken)
	} else {
		fmt.Fprintf(out, "lbproxy: pid %d, no running process on %s\n", os.Getpid(), cfg.upgradeSocket)
	}
	return &sockets{up: up}, nil
}

// Listen opens a listener, inherited when the previous process had it.
func (s *sockets) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	if s.up == nil {
		var lc net.ListenConfig
		return lc.Listen(ctx, network, addr)
	}
	return s.up.Listen(ctx, network, addr)
}

// ListenPacket is Listen for UDP sockets.
func (s *sockets) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	if s.up == nil {
		var lc net.ListenConfig
		return lc.ListenPacket(ctx, network, addr)
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
		if !errors.Is(err, upgrade.ErrPredecessor) {
			return fmt.Errorf("lbproxy: -upgrade-socket: %w", err)
		}
		// The previous process may be gone: serve on.
		logger.Warn("lbproxy: the previous process did not acknowledge the upgrade", slog.Any("error", err))
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
