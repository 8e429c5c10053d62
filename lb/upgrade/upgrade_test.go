//go:build linux || darwin || freebsd

package upgrade

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// sockPath returns a short upgrade socket path in a fresh directory (unix
// socket paths are limited to about 100 bytes).
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// newUpgrader returns an Upgrader on path, closed at the end of the test.
func newUpgrader(t *testing.T, path string) *Upgrader {
	t.Helper()
	u := &Upgrader{Path: path, Timeout: 5 * time.Second}
	t.Cleanup(func() { u.Close() })
	return u
}

// serveName accepts on ln until it is closed, writing name+"\n" to every
// connection; it returns a wait for its end.
func serveName(ln net.Listener, name string) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name+"\n")
			c.Close()
		}
	})
	return wg.Wait
}

// greeting dials network addr and returns the line its server writes.
func greeting(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestHandover hands a TCP listener, a UDP socket and a unix listener from
// one Upgrader to the next and checks that they are the same sockets: a
// connection queued while neither accepts is accepted by the successor
// once the old listener is closed, and the unix socket's file survives.
func TestHandover(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	unixPath := filepath.Join(filepath.Dir(path), "app")

	old := newUpgrader(t, path)
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := old.Inherited(); len(got) != 0 {
		t.Fatalf("first process inherited %v", got)
	}
	oldTCP, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer oldTCP.Close()
	addr := oldTCP.Addr().String()
	oldUDP, err := old.ListenPacket(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer oldUDP.Close()
	oldUnix, err := old.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer oldUnix.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("upgrade socket %v, %v: want a socket of mode 0600", fi, err)
	}
	waitOld := serveName(oldTCP, "old")
	if got := greeting(t, "tcp", addr); got != "old" {
		t.Fatalf("before the upgrade: %q", got)
	}

	successor := newUpgrader(t, path)
	if err := successor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"tcp " + addr, "udp " + addr, "unix " + unixPath}
	if got := successor.Inherited(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("inherited %q, want %q", got, want)
	}
	newTCP, err := successor.Listen(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer newTCP.Close()
	newUDP, err := successor.ListenPacket(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer newUDP.Close()
	newUnix, err := successor.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer newUnix.Close()
	if closed(old.Upgraded()) {
		t.Fatal("the old process was told to drain before the successor was ready")
	}
	if err := successor.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed(old.Upgraded()) {
		t.Fatal("Ready returned and the old process was not told to drain")
	}

	// The old process stops accepting; a connection made now waits in the
	// shared socket's queue, and the successor accepts it.
	oldTCP.Close()
	oldUnix.Close()
	oldUDP.Close()
	waitOld()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial once the old listener is closed: %v", err)
	}
	defer c.Close()
	waitNew := serveName(newTCP, "new")
	defer waitNew()
	defer newTCP.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "new\n" {
		t.Fatalf("queued connection: %q, %v", line, err)
	}
	if got := greeting(t, "tcp", addr); got != "new" {
		t.Fatalf("after the upgrade: %q", got)
	}

	// The unix socket's file is still there, served by the successor.
	waitUnix := serveName(newUnix, "new-unix")
	defer waitUnix()
	defer newUnix.Close()
	if got := greeting(t, "unix", unixPath); got != "new-unix" {
		t.Fatalf("unix socket after the upgrade: %q", got)
	}

	// The UDP socket too.
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	newUDP.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, _, err := newUDP.ReadFrom(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("UDP after the upgrade: %q, %v", buf[:n], err)
	}

	// The successor serves the upgrade socket in turn.
	newer := newUpgrader(t, path)
	if err := newer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := newer.Inherited(); len(got) != 3 {
		t.Fatalf("the third process inherited %q", got)
	}
}

// TestSuccessorGivesUp: a successor that closes before Ready leaves the
// old process serving, and serving the next successor.
func TestSuccessorGivesUp(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := newUpgrader(t, path)
	old.Timeout = time.Second // a second successor waits half of it
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	first := newUpgrader(t, path)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A second successor meanwhile is refused.
	second := newUpgrader(t, path)
	if err := second.Start(ctx); err == nil || !strings.Contains(err.Error(), "another upgrade is under way") {
		t.Fatalf("second successor during a handover: %v", err)
	}
	first.Close()
	// The old process sees the first successor's connection close, and
	// serves the next one.
	third := newUpgrader(t, path)
	if err := third.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := third.Inherited(); len(got) != 1 || got[0] != "tcp "+ln.Addr().String() {
		t.Fatalf("inherited %q", got)
	}
	if closed(old.Upgraded()) {
		t.Fatal("the old process drains though no successor was ready")
	}
	if _, err := third.Listen(ctx, "tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := third.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed(old.Upgraded()) {
		t.Fatal("the old process was not told to drain")
	}
}

// TestNoPredecessor: no file, or a stale socket file nobody serves, means
// a fresh start; Ready replaces the stale file.
func TestNoPredecessor(t *testing.T) {
	ctx := context.Background()
	path := sockPath(t)
	u := newUpgrader(t, path)
	if err := u.Start(ctx); err != nil {
		t.Fatalf("no file: %v", err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	u = newUpgrader(t, path)
	handing := make(chan bool, 2)
	u.OnHandover = func(on bool) { handing <- on }
	if err := u.Start(ctx); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if err := u.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	probe := newUpgrader(t, path)
	if err := probe.Start(ctx); err != nil {
		t.Fatalf("after Ready replaced the stale socket: %v", err)
	}
	// The probe stops without READY: Path is u's again (while a
	// successor holds the sockets, Close leaves Path to it).
	probe.Close()
	for _, want := range []bool{true, false} {
		select {
		case on := <-handing:
			if on != want {
				t.Fatalf("OnHandover(%v), want %v", on, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no OnHandover(%v)", want)
		}
	}
	u.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the upgrade socket: %v", err)
	}
}

// TestBadPeers: malformed, oversized and other-version hellos are refused,
// silent peers are cut after Timeout, and a proper successor is still
// served afterwards.
func TestBadPeers(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := &Upgrader{Path: path, Timeout: 300 * time.Millisecond}
	defer old.Close()
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, send, want string // want: in the answer ("" : none, the connection closed)
	}{
		{"garbage", "GET / HTTP/1.1\n", "ERR"},
		{"other version", "LBKIT-UPGRADE 2\n", "ERR"},
		{"long line", strings.Repeat("x", 300), "ERR"}, // or a reset, with bytes unread
		{"two lines", "LBKIT-UPGRADE 1\nREADY\n", "ERR"},
		{"silent", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			io.WriteString(c, tt.send)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if errors.Is(err, syscall.ECONNRESET) && tt.name == "long line" {
				got, err = []byte(tt.want), nil // closed with the rest of the line unread
			}
			if err != nil {
				t.Fatalf("the old process did not close the connection: %v", err)
			}
			if (tt.want == "") != (len(got) == 0) || !strings.Contains(string(got), tt.want) {
				t.Fatalf("answer %q, want %q", got, tt.want)
			}
			if strings.Contains(string(got), " OK ") {
				t.Fatalf("sockets handed to a bad peer: %q", got)
			}
			if tt.name == "silent" && time.Since(start) < 300*time.Millisecond {
				t.Fatalf("silent peer cut after %v, before Timeout", time.Since(start))
			}
		})
	}
	u := newUpgrader(t, path)
	if err := u.Start(ctx); err != nil {
		t.Fatalf("a successor after the bad peers: %v", err)
	}
	if len(u.Inherited()) != 1 {
		t.Fatalf("inherited %q", u.Inherited())
	}
}

// TestReadyTimeout: a successor that takes the sockets and never says it
// is ready is abandoned after ReadyTimeout; the old process serves on.
func TestReadyTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := &Upgrader{Path: path, ReadyTimeout: 200 * time.Millisecond}
	defer old.Close()
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	slow := newUpgrader(t, path)
	if err := slow.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The old process closes the connection after ReadyTimeout: reading
	// from it ends.
	slow.pred.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.pred.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the old process kept waiting for READY: %v", err)
	}
	if err := slow.Ready(ctx); err == nil {
		t.Fatal("Ready after the old process gave up succeeded")
	}
	if closed(old.Upgraded()) {
		t.Fatal("the old process drains for a successor that was never ready")
	}
}

// TestStartTimeout: a process that accepts on the upgrade socket and never
// answers makes Start fail within Timeout.
func TestStartTimeout(t *testing.T) {
	path := sockPath(t)
	mute, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	u := &Upgrader{Path: path, Timeout: 200 * time.Millisecond}
	defer u.Close()
	start := time.Now()
	err = u.Start(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Start took %v with a Timeout of 200ms", d)
	}
}

// TestPeerCredentials: the kernel's credentials of the peer are this
// process's, as both ends of the upgrade socket check.
func TestPeerCredentials(t *testing.T) {
	path := sockPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, end := range []*net.UnixConn{c, s} {
		uid, pid, err := peerCred(end)
		if err != nil {
			t.Fatal(err)
		}
		if uid != os.Geteuid() || (pid != -1 && pid != os.Getpid()) {
			t.Fatalf("peer uid %d pid %d, want %d and %d", uid, pid, os.Geteuid(), os.Getpid())
		}
	}
}

// TestClosedSockets: a socket closed by its owner is not handed over, and
// one opened again on the same address is handed over once.
func TestClosedSockets(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := newUpgrader(t, path)
	gone, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := gone.Addr().String()
	gone.Close()
	again, err := old.Listen(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	other, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	u := newUpgrader(t, path)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := u.Inherited(); len(got) != 1 || got[0] != "tcp "+addr {
		t.Fatalf("inherited %q, want only tcp %s", got, addr)
	}
	old.mu.Lock()
	n := len(old.own)
	old.mu.Unlock()
	if n != 1 {
		t.Fatalf("the old process still tracks %d sockets, want 1", n)
	}
}

// TestPathNotASocket: a file at Path that is not a socket is never
// replaced.
func TestPathNotASocket(t *testing.T) {
	ctx := context.Background()
	path := sockPath(t)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := newUpgrader(t, path)
	if err := u.Start(ctx); err != nil {
		t.Fatalf("Start with a regular file at Path: %v", err)
	}
	if err := u.Ready(ctx); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Ready = %v, want an error about the file", err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "precious" {
		t.Fatalf("the file at Path is now %q, %v", data, err)
	}
}
