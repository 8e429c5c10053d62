package pipe

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestLoopEnvSwitch checks that two TCP connections go to the event loop
// by default, and that LBKIT_PIPE=goroutines in the environment (read at
// start, so checked in a child process) keeps them off it.
func TestLoopEnvSwitch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if os.Getenv("PIPE_TEST_CHILD") == "1" {
		if canLoop(c, s) {
			t.Fatal("LBKIT_PIPE=goroutines: the copy would still go to the event loop")
		}
		return
	}
	if os.Getenv("LBKIT_PIPE") != "" {
		t.Skip("LBKIT_PIPE is set for this run")
	}
	if !canLoop(c, s) {
		t.Fatal("two TCP connections do not go to the event loop")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopEnvSwitch$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LBKIT_PIPE=goroutines", "PIPE_TEST_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child with LBKIT_PIPE=goroutines: %v\n%s", err, out)
	}
}

// loopbackPair returns the two ends of a TCP connection on 127.0.0.1.
func loopbackPair(t *testing.T) (dialed, accepted net.Conn) {
	t.Helper()
	d, a := testutil.TCPPair(t)
	d.SetDeadline(time.Now().Add(10 * time.Second))
	a.SetDeadline(time.Now().Add(10 * time.Second))
	return d, a
}

type proxyResult struct {
	up, down int64
	err      error
}

// startOn runs Proxy between a new client and server on loop l and
// returns the test's ends of both.
func startOn(t *testing.T, l *loop) (client, server net.Conn, res <-chan proxyResult) {
	t.Helper()
	client, pc := loopbackPair(t)
	ps, server := loopbackPair(t)
	ch := make(chan proxyResult, 1)
	go func() {
		up, down, err := Proxy(context.Background(), pc, ps, Options{loop: l})
		ch <- proxyResult{up, down, err}
	}()
	return client, server, ch
}

// echoThrough sends msg from client to server and back.
func echoThrough(t *testing.T, client, server net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(client, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if _, err := server.Write(got); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, got); err != nil || string(got) != msg {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func (l *loop) sessionCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

// TestLoopFailureEndsSessionsNotProcess: when epoll itself fails, the
// loop's sessions end with the error (their connections reset), the
// process goes on, and later sessions are copied in goroutines.
func TestLoopFailureEndsSessionsNotProcess(t *testing.T) {
	var broken atomic.Bool
	l := &loop{epfd: -1, evfd: -1, wait: func(epfd int, events []syscall.EpollEvent) (int, error) {
		if broken.Load() {
			return 0, syscall.EBADF
		}
		return epollWait(epfd, events)
	}}
	if err := l.init(); err != nil {
		t.Skipf("no event loop: %v", err)
	}
	t.Cleanup(func() { l.file.Close(); syscall.Close(l.evfd) })

	client, server, res := startOn(t, l)
	echoThrough(t, client, server, "on the loop")
	if n := l.sessionCount(); n != 2 {
		t.Fatalf("the loop holds %d descriptors, want the session's 2", n)
	}

	broken.Store(true)
	// The next event makes the loop harvest, which fails.
	io.WriteString(client, "after the failure")
	select {
	case r := <-res:
		if !errors.Is(r.err, syscall.EBADF) {
			t.Fatalf("Proxy returned %v, want the epoll error", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end when its loop failed")
	}
	if _, err := io.ReadAll(client); err == nil {
		t.Error("client: clean EOF, want a reset")
	}
	if err := l.failed(); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("loop failure = %v", err)
	}

	// A new session is not given to the failed loop.
	client, server, res = startOn(t, l)
	echoThrough(t, client, server, "in goroutines")
	if n := l.sessionCount(); n != 0 {
		t.Fatalf("the failed loop took a session (%d descriptors)", n)
	}
	client.Close()
	server.Close()
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("Proxy after the failure: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the goroutine copy did not end")
	}
}

// TestLoopStalled: a loop that serves its events is not reported; one
// blocked in its event harvest is, once it has left a wake unserved for
// longer than the allowed delay; it is no longer once it serves again.
func TestLoopStalled(t *testing.T) {
	var stuck atomic.Bool
	release := make(chan struct{})
	l := &loop{epfd: -1, evfd: -1, wait: func(epfd int, events []syscall.EpollEvent) (int, error) {
		if stuck.Load() {
			<-release
		}
		return epollWait(epfd, events)
	}}
	if err := l.init(); err != nil {
		t.Skipf("no event loop: %v", err)
	}
	t.Cleanup(func() { l.file.Close(); syscall.Close(l.evfd) })
	const d = 50 * time.Millisecond
	stalled := func() error { return l.stalled(time.Since(epoch), d) }

	if err := stalled(); err != nil {
		t.Fatalf("a loop without sessions: %v", err)
	}
	client, server, res := startOn(t, l)
	echoThrough(t, client, server, "live")
	// A serving loop answers every wake: never reported.
	for range 5 {
		if err := stalled(); err != nil {
			t.Fatalf("a serving loop reported stalled: %v", err)
		}
		time.Sleep(2 * d)
	}

	stuck.Store(true)
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(d / 2) {
		err = stalled()
	}
	if err == nil || !strings.Contains(err.Error(), "events pending") {
		close(release)
		t.Fatalf("a blocked loop: stalled = %v, want it reported", err)
	}

	stuck.Store(false)
	close(release)
	for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); time.Sleep(d / 2) {
		err = stalled()
	}
	if err != nil {
		t.Fatalf("the loop serves again, still reported: %v", err)
	}
	echoThrough(t, client, server, "again")
	client.Close()
	server.Close()
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("Proxy: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end")
	}
}
