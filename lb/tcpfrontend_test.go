package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// startL4 serves b on a loopback TCPFrontend and returns its address.
func startL4(t *testing.T, b lb.Backend) (*lb.TCPFrontend, string) {
	t.Helper()
	srv := &lb.TCPFrontend{Name: "test", Backend: b}
	return srv, serveL4(t, srv)
}

// serveL4 serves srv on a loopback listener until the test ends, and
// returns its address.
func serveL4(t *testing.T, srv *lb.TCPFrontend) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, lb.ErrFrontendClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readName reads the greeting of a testutil.NameServer.
func readName(t testing.TB, c net.Conn) string {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading server name: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestL4StreamIntactWithHalfClose(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "echo"}
	must(t, pool.Update(servers(echo.Addr)))
	_, addr := startL4(t, pool)

	for _, size := range []int{0, 1, 64 << 10, 4 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := dial(t, addr).(*net.TCPConn)
			defer c.Close()
			payload := make([]byte, size)
			rand.Read(payload)
			var got []byte
			var rerr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, rerr = io.ReadAll(c)
			}()
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			must(t, c.CloseWrite()) // half-close: the echo must still come back
			<-done
			must(t, rerr)
			if sha256.Sum256(got) != sha256.Sum256(payload) {
				t.Fatalf("echo of %d bytes came back as %d different bytes", size, len(got))
			}
		})
	}
}

func TestL4RetriesRefusingServer(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.NameServer(t, "a")
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "dead1", Addr: testutil.ClosedAddr(t)}, {Name: "a", Addr: a.Addr}, {Name: "dead2", Addr: testutil.ClosedAddr(t)}}))
	_, addr := startL4(t, pool)
	for i := range 12 {
		c := dial(t, addr)
		if got := readName(t, c); got != "a" {
			t.Fatalf("connection %d reached %q", i, got)
		}
		c.Close()
	}
	st := pool.Status()
	if st[0].Failures == 0 || st[2].Failures == 0 {
		t.Fatalf("refusing servers were never tried: %+v", st)
	}
}

func TestL4FallbackWhenNoServer(t *testing.T) {
	testutil.CheckLeaks(t)
	fb := testutil.NameServer(t, "fallback")
	fallback := &lb.Pool{Name: "fallback"}
	must(t, fallback.Update(servers(fb.Addr)))
	pool := &lb.Pool{Name: "main", Fallback: fallback}
	must(t, pool.Update(servers("127.0.0.1:1")))
	pool.SetState("127.0.0.1:1", lb.StateDown, "test")
	_, addr := startL4(t, pool)
	c := dial(t, addr)
	defer c.Close()
	if got := readName(t, c); got != "fallback" {
		t.Fatalf("got %q, want fallback", got)
	}
	// Without Fallback the connection is closed.
	pool2 := &lb.Pool{}
	_, addr2 := startL4(t, pool2)
	c2 := dial(t, addr2)
	defer c2.Close()
	if n, err := c2.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read on a connection with no server: %d, %v", n, err)
	}
}

// TestUpdateUnderTrafficLosesNothing changes the server list continuously
// while clients connect: every connection reaches a server and completes.
func TestUpdateUnderTrafficLosesNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	var srvs []*testutil.TCPServer
	for _, n := range []string{"a", "b", "c"} {
		srvs = append(srvs, testutil.NameServer(t, n))
	}
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: srvs[0].Addr}}))
	_, addr := startL4(t, pool)

	stop := make(chan struct{})
	var updates sync.WaitGroup
	updates.Add(1)
	go func() {
		defer updates.Done()
		sets := [][]lb.Server{
			{{Name: "a", Addr: srvs[0].Addr}, {Name: "b", Addr: srvs[1].Addr}},
			{{Name: "c", Addr: srvs[2].Addr}},
			{{Name: "b", Addr: srvs[1].Addr, Weight: 3}, {Name: "c", Addr: srvs[2].Addr}},
			{{Name: "a", Addr: srvs[0].Addr}},
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := pool.Update(sets[i%len(sets)]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var ok, failed atomic.Int64
	var clients sync.WaitGroup
	for w := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for i := range 40 {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				name, err1 := r.ReadString('\n')
				msg := fmt.Sprintf("w%d-%d\n", w, i)
				_, err2 := io.WriteString(c, msg)
				echo, err3 := r.ReadString('\n')
				c.Close()
				if err1 != nil || err2 != nil || err3 != nil || echo != msg || name == "" {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	clients.Wait()
	close(stop)
	updates.Wait()
	if failed.Load() != 0 || ok.Load() != 8*40 {
		t.Fatalf("%d connections ok, %d failed", ok.Load(), failed.Load())
	}
}

func TestTCPFrontendShutdownGrace(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{}
	must(t, pool.Update(servers(echo.Addr)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	srv := &lb.TCPFrontend{Backend: pool}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- lb.Serve(ctx, srv, ln, 2*time.Second) }()

	// An open stream finishes during the grace period.
	c := dial(t, addr)
	defer c.Close()
	roundTrip(t, c, "before")
	cancel()
	testutil.Eventually(t, "the listener to close", func() bool { _, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); return err != nil })
	roundTrip(t, c, "during grace")
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	select {
	case err := <-served:
		must(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after the last stream ended")
	}
}

func TestTCPFrontendShutdownDeadlineForcesClose(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{}
	must(t, pool.Update(servers(echo.Addr)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &lb.TCPFrontend{Backend: pool}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- lb.Serve(ctx, srv, ln, 200*time.Millisecond) }()
	c := dial(t, ln.Addr().String())
	defer c.Close()
	roundTrip(t, c, "x")
	start := time.Now()
	cancel()
	// The idle client never closes: the deadline closes it.
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("reading a force-closed stream: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("stream closed after %v, want about the 200ms grace", d)
	}
	must(t, <-served)
	if n := srv.ActiveConns(); n != 0 {
		testutil.Eventually(t, "no active connection", func() bool { return srv.ActiveConns() == 0 })
	}
}

func TestTCPFrontendHandshakeTimeoutBoundsPeek(t *testing.T) {
	testutil.CheckLeaks(t)
	peeked := make(chan error, 1)
	b := lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		defer c.Close()
		_, err := c.Peek(5)
		peeked <- err
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &lb.TCPFrontend{Backend: b, HandshakeTimeout: 100 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	c := dial(t, ln.Addr().String())
	defer c.Close()
	c.Write([]byte("ab")) // too short for the peek
	select {
	case err := <-peeked:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("peek error = %v, want a timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("peek was not bounded by HandshakeTimeout")
	}
}

func TestTCPFrontendRecoversPanics(t *testing.T) {
	testutil.CheckLeaks(t)
	var calls atomic.Int32
	b := lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		c.Write([]byte("ok"))
		c.Close()
	})
	_, addr := startL4(t, b)
	c := dial(t, addr)
	io.Copy(io.Discard, c) // closed after the panic
	c.Close()
	c = dial(t, addr)
	defer c.Close()
	got, _ := io.ReadAll(c)
	if string(got) != "ok" {
		t.Fatalf("after a panic the server answered %q", got)
	}
}

// A panic in a Pool's Dial, which runs on a goroutine of its own, reaches
// the frontend's recovery like one in the Backend: the process survives
// and later connections are served.
func TestTCPFrontendRecoversPanicsInDial(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	var calls atomic.Int32
	pool := &lb.Pool{Name: "p", Retries: -1, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	must(t, pool.Update(servers(echo.Addr)))
	_, addr := startL4(t, pool)
	c := dial(t, addr)
	io.Copy(io.Discard, c) // closed after the panic
	c.Close()
	c = dial(t, addr)
	defer c.Close()
	c.Write([]byte("ok"))
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	if string(got) != "ok" {
		t.Fatalf("after a panic the proxy echoed %q", got)
	}
}

func TestConnPeekReplays(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { a.Write([]byte("hello, world")); a.Close() }()
	c := lb.NewConn(b, "fe")
	p, err := c.Peek(5)
	must(t, err)
	if string(p) != "hello" {
		t.Fatalf("Peek = %q", p)
	}
	p, err = c.Peek(7)
	must(t, err)
	if string(p) != "hello, " || !strings.HasPrefix(string(c.Buffered()), "hello, ") {
		t.Fatalf("second Peek = %q, buffered %q", p, c.Buffered())
	}
	all, err := io.ReadAll(c)
	must(t, err)
	if string(all) != "hello, world" {
		t.Fatalf("read after peek = %q", all)
	}
	if _, err := c.Peek(1 << 20); !errors.Is(err, lb.ErrPeekTooLarge) {
		t.Fatalf("oversized peek: %v", err)
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, []byte(msg)) {
		t.Fatalf("echo of %q = %q, %v", msg, buf, err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || errors.Is(err, net.ErrClosed))
}

// TestL4DialAddressForms: a server's address may be an IP literal with a
// port (dialed without the resolver) or a host name (resolved), and a
// refusing literal fails over like any other.
func TestL4DialAddressForms(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.NameServer(t, "a")
	_, port, err := net.SplitHostPort(a.Addr)
	must(t, err)
	for _, tc := range []struct{ name, addr string }{
		{"literal", a.Addr},
		{"host name", net.JoinHostPort("localhost", port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := &lb.Pool{Name: "p"}
			must(t, pool.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "a", Addr: tc.addr}}))
			_, addr := startL4(t, pool)
			for i := range 4 {
				c := dial(t, addr)
				if got := readName(t, c); got != "a" {
					t.Fatalf("connection %d reached %q", i, got)
				}
				c.Close()
			}
		})
	}
}
