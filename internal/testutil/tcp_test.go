package testutil

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestEchoServerHalfClose(t *testing.T) {
	CheckLeaks(t)
	s := EchoServer(t)
	c := dialTCP(t, s.Addr)
	payload := strings.Repeat("echo me ", 100_000)
	go func() {
		io.WriteString(c, payload)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(payload))
	}
	if s.Conns() != 1 {
		t.Fatalf("Conns() = %d", s.Conns())
	}
	c.Close()
	Eventually(t, "no active connection", func() bool { return s.Active() == 0 })
}

func TestNameServer(t *testing.T) {
	CheckLeaks(t)
	s := NameServer(t, "srv-a")
	c := dialTCP(t, s.Addr)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || line != "srv-a\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
}

func TestTCPServerCloseEndsConnections(t *testing.T) {
	CheckLeaks(t)
	s := EchoServer(t)
	c := dialTCP(t, s.Addr)
	io.WriteString(c, "x")
	io.ReadFull(c, make([]byte, 1))
	s.Close()
	s.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Fatal("dial succeeded after Close")
	}
}

func TestClosedAddrRefuses(t *testing.T) {
	addr := ClosedAddr(t)
	_, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

func TestLookBinary(t *testing.T) {
	if p := LookBinary(t, "go", "golang"); p == "" {
		t.Fatal("go not found")
	}
	if InCI() {
		return // a missing binary fails the test in CI, by design
	}
	ft := &skipTB{TB: t}
	LookBinary(ft, "no-such-binary-lbkit", "none")
	if !ft.skipped {
		t.Fatal("missing binary was not skipped")
	}
}

// skipTB records Skipf instead of ending the test.
type skipTB struct {
	testing.TB
	skipped bool
}

func (s *skipTB) Helper()                   {}
func (s *skipTB) Skipf(string, ...any)      { s.skipped = true }
func (s *skipTB) Fatalf(f string, a ...any) { s.TB.Errorf("unexpected Fatalf: "+f, a...) }
