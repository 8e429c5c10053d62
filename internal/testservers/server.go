package testservers

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// errExited is the failure of a server that exited while starting.
var errExited = errors.New("exited while starting")

// startTimeout bounds the wait for a server to accept connections.
const startTimeout = 30 * time.Second

// Server is a running (or stopped) external server.
type Server struct {
	// Name is the kind of server ("redis", "mariadb", ...).
	Name string
	// Addr is its loopback address, "127.0.0.1:port"; it stays the same
	// across Stop and Start.
	Addr string
	// Port is Addr's port.
	Port int
	// Dir is the server's temporary directory (data, configuration, logs).
	Dir string

	// auxPort is another loopback port free when the server first
	// started, for servers that listen on two (etcd's peer port); it
	// stays the same across Stop and Start.
	auxPort int

	command func() *exec.Cmd // builds the command that runs the server
	ready   func() error     // nil, or reports whether a listening server serves
	stopSig syscall.Signal

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// freePorts returns n distinct loopback ports that were free a moment
// ago, each held until all are chosen so that none comes twice. They are
// taken below the kernel's ephemeral range when it can be read: a port in
// that range, once its server stops, may become the local end of any
// outgoing connection on the machine, and a restart on it would fail for
// as long as that connection lives.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	low := ephemeralLow()
	ports := make([]int, 0, n)
	for range n {
		var ln net.Listener
		for try := 0; ln == nil && try < 50 && low > minPort; try++ {
			ln, _ = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(minPort+rand.IntN(low-minPort))))
		}
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				tb.Fatalf("testservers: %v", err)
			}
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// minPort is the lowest port freePorts chooses: above the well-known and
// common service ports.
const minPort = 20000

// ephemeralLow returns the first port of the kernel's ephemeral range, or
// 0 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	low, _ := strconv.Atoi(f[0])
	return low
}

func newServer(tb testing.TB, name, dir string, stop syscall.Signal, command func(s *Server) *exec.Cmd, ready ...func(s *Server) error) *Server {
	tb.Helper()
	var err error
	for range 3 { // another process may take the free port before the server does
		ports := freePorts(tb, 2)
		port := ports[0]
		s := &Server{Name: name, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, stopSig: stop,
			auxPort: ports[1]}
		s.command = func() *exec.Cmd { return command(s) }
		if len(ready) > 0 {
			s.ready = func() error { return ready[0](s) }
		}
		if err = s.start(); err == nil {
			tb.Cleanup(func() { s.stop(tb) })
			return s
		}
	}
	tb.Fatalf("testservers: %v", err)
	return nil
}

// Start starts the server (again) on its port and waits until it accepts
// connections. It fails tb if the server exits or does not listen in time.
// A server that exits at once is started again a few times: while it was
// stopped, a short-lived socket (another test's, or a client's local end)
// may have held its port.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	var err error
	delay := 200 * time.Millisecond
	for attempt := range 8 { // about 5 s in all
		if attempt > 0 {
			time.Sleep(delay) // for the holder of the port to go
			delay = min(2*delay, time.Second)
		}
		if err = s.start(); err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	if err == nil {
		return
	}
	tb.Fatalf("testservers: %v", err)
}

func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return fmt.Errorf("%s already running", s.Name)
	}
	cmd := s.command()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			if s.ready != nil {
				err = s.ready()
			}
			if err == nil && !exited(done, 100*time.Millisecond) { // not someone else's port
				return nil
			}
		}
		select {
		case <-done:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("%s %w: %v\n%s", s.Name, errExited, cmd.ProcessState, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop(nil)
			return fmt.Errorf("%s did not listen on %s within %v:\n%s", s.Name, s.Addr, startTimeout, out.String())
		}
	}
}

// Stop stops the server and waits until it has exited: its port refuses
// connections afterwards.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.stop(tb)
}

func (s *Server) stop(tb testing.TB) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(s.stopSig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		if tb != nil {
			tb.Logf("testservers: %s did not stop on %v; killed", s.Name, s.stopSig)
		}
	}
}

// exited reports whether done closes within grace.
func exited(done <-chan struct{}, grace time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, bounded.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 64<<10 {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// run runs a setup command, failing tb with its output on error.
func run(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("testservers: %s: %v\n%s", cmd.String(), err, out)
	}
}

// unprivileged returns the credentials to run servers that refuse root
// (PostgreSQL) with, or nil when not running as root.
func unprivileged() *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	return &syscall.Credential{Uid: 65534, Gid: 65534} // nobody:nogroup
}

// sharedDir makes a temporary directory that an unprivileged user can
// own: t.TempDir's parents are private to root. It is removed at cleanup.
func sharedDir(tb testing.TB, pattern string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatalf("testservers: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if cred := unprivileged(); cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("testservers: %v", err)
		}
	}
	return dir
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatalf("testservers: %v", fmt.Errorf("write %s: %w", path, err))
	}
}
