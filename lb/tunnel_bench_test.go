package lb_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// BenchmarkL4Session measures one short L4 session end to end through a
// TCPFrontend and a Pool: the client connects, sends a byte, reads the
// echo, half-closes and reads to EOF. It includes the client's and the
// echo server's work on the same machine; compare runs paired, on one
// machine, one after the other.
func BenchmarkL4Session(b *testing.B) {
	echo := testutil.EchoServer(b)
	pool := &lb.Pool{}
	if err := pool.Update(servers(echo.Addr)); err != nil {
		b.Fatal(err)
	}
	srv := &lb.TCPFrontend{Backend: pool}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, lb.ErrFrontendClosed) {
			b.Errorf("Serve returned %v", err)
		}
	})
	addr := ln.Addr().String()
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
			b.Fatalf("after the half-close: %d bytes, %v", n, err)
		}
		c.Close()
	}
	b.StopTimer()
	// Sessions end on the event loop after the client saw EOF: wait for
	// the frontend to untrack them, so that the next benchmark starts
	// clean.
	deadline := time.Now().Add(5 * time.Second)
	for srv.ActiveConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
