package pipe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.LeakMain(m) }

// mode selects the connections handed to Proxy.
type mode string

const (
	// loop: two *net.TCPConn, copied by the event loop on Linux.
	modeLoop mode = "tcp-loop"
	// splice: two *net.TCPConn copied in goroutines (Options.Goroutines),
	// with splice(2) on Linux.
	modeSplice mode = "tcp-splice"
	// buffered: TCP connections hidden behind a wrapper type, copied
	// through the pooled buffer.
	modeBuffered mode = "tcp-buffered"
	// tls: TLS on both sides (the buffered path).
	modeTLS mode = "tls"
)

var modes = []mode{modeLoop, modeSplice, modeBuffered, modeTLS}

// plainConn hides the *net.TCPConn type (and so its ReadFrom) but keeps
// CloseWrite.
type plainConn struct{ net.Conn }

func (c plainConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// NetConn returns the TCP connection, for Proxy's aborts.
func (c plainConn) NetConn() net.Conn { return c.Conn }

// noHalfClose hides CloseWrite.
type noHalfClose struct{ net.Conn }

type result struct {
	up, down int64
	err      error
	at       time.Time
}

// env is a Proxy running between a test client and a test server:
//
//	client ⇄ [pc  Proxy  ps] ⇄ server
type env struct {
	client, server net.Conn
	// rawClient and rawServer are the TCP connections under client and
	// server.
	rawClient, rawServer *net.TCPConn
	res                  chan result
	cancel               context.CancelCauseFunc
	started              time.Time
}

var (
	caOnce sync.Once
	ca     *testutil.CA
	leaf   tls.Certificate
)

func tlsConfigs(t testing.TB) (server, client *tls.Config) {
	caOnce.Do(func() {
		ca = testutil.NewCA(t)
		leaf = ca.Leaf(t, "127.0.0.1")
	})
	return &tls.Config{Certificates: []tls.Certificate{leaf}}, ca.ClientConfig("127.0.0.1")
}

// tcpPair returns the dialed and accepted ends of a loopback TCP
// connection.
func tcpPair(t testing.TB) (dialed, accepted *net.TCPConn) { return testutil.TCPPair(t) }

// start runs Proxy between new connections. The connections are closed and
// Proxy is waited for by a cleanup.
func start(t testing.TB, m mode, opt pipe.Options, wrap ...func(net.Conn) net.Conn) *env {
	t.Helper()
	cli, pc := tcpPair(t)
	ps, srv := tcpPair(t)
	e := &env{client: cli, server: srv, rawClient: cli, rawServer: srv, res: make(chan result, 1)}
	var proxyClient, proxyServer net.Conn = pc, ps
	switch m {
	case modeSplice:
		opt.Goroutines = true
	case modeBuffered:
		proxyClient, proxyServer = plainConn{pc}, plainConn{ps}
	case modeTLS:
		sconf, cconf := tlsConfigs(t)
		e.client = tls.Client(cli, cconf)
		proxyClient = tls.Server(pc, sconf)
		proxyServer = tls.Client(ps, cconf)
		e.server = tls.Server(srv, sconf)
		// Peers handshake on their own, as real ones do, whatever the
		// test reads or writes first.
		for _, c := range []net.Conn{e.client, e.server} {
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}
	for _, w := range wrap {
		proxyClient, proxyServer = w(proxyClient), w(proxyServer)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	e.cancel = cancel
	e.started = time.Now()
	go func() {
		up, down, err := pipe.Proxy(ctx, proxyClient, proxyServer, opt)
		e.res <- result{up, down, err, time.Now()}
	}()
	t.Cleanup(func() {
		cancel(errors.New("test over"))
		cli.Close()
		srv.Close()
		select {
		case r := <-e.res:
			e.res <- r
		case <-time.After(5 * time.Second):
			t.Error("Proxy did not return after the test")
		}
	})
	return e
}

// wait returns the result of Proxy, failing the test if it takes longer
// than d.
func (e *env) wait(t testing.TB, d time.Duration) result {
	t.Helper()
	select {
	case r := <-e.res:
		e.res <- r
		return r
	case <-time.After(d):
		t.Fatalf("Proxy still running after %v", d)
		return result{}
	}
}

// ended reports whether Proxy has returned.
func (e *env) ended() (result, bool) {
	select {
	case r := <-e.res:
		e.res <- r
		return r, true
	default:
		return result{}, false
	}
}

func closeWrite(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
}

// stream writes size random bytes to c then half-closes it, and meanwhile
// reads c to EOF. It returns the SHA-256 of what it sent and received.
func stream(c net.Conn, size int) (sent, received [32]byte, n int64, err error) {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for left := size; left > 0; {
			k := min(left, len(buf))
			rand.Read(buf[:k])
			h.Write(buf[:k])
			if _, werr = c.Write(buf[:k]); werr != nil {
				return
			}
			left -= k
		}
		copy(sent[:], h.Sum(nil))
		werr = c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	h := sha256.New()
	n, err = io.Copy(h, c)
	copy(received[:], h.Sum(nil))
	wg.Wait()
	if err == nil {
		err = werr
	}
	return sent, received, n, err
}

func TestStreamsIntactBothWays(t *testing.T) {
	const size = 8 << 20
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			e := start(t, m, pipe.Options{Idle: 10 * time.Second})
			e.client.SetDeadline(time.Now().Add(20 * time.Second))
			e.server.SetDeadline(time.Now().Add(20 * time.Second))
			type out struct {
				sent, received [32]byte
				n              int64
				err            error
			}
			srvOut := make(chan out, 1)
			go func() {
				s, r, n, err := stream(e.server, size)
				srvOut <- out{s, r, n, err}
			}()
			cs, cr, cn, cerr := stream(e.client, size)
			so := <-srvOut
			if cerr != nil || so.err != nil {
				t.Fatalf("client: %v, server: %v", cerr, so.err)
			}
			if cn != size || so.n != size {
				t.Fatalf("client received %d bytes, server %d, want %d", cn, so.n, size)
			}
			if cs != so.received {
				t.Error("client to server stream corrupted")
			}
			if so.sent != cr {
				t.Error("server to client stream corrupted")
			}
			r := e.wait(t, 5*time.Second)
			if r.err != nil || r.up != size || r.down != size {
				t.Fatalf("Proxy = %d, %d, %v; want %d, %d, nil", r.up, r.down, r.err, size, size)
			}
		})
	}
}

func TestClientPendingFirst(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			pending := []byte("PEEKED-")
			e := start(t, m, pipe.Options{ClientPending: pending})
			deadline(e, 5*time.Second)
			if _, err := io.WriteString(e.client, "rest"); err != nil {
				t.Fatal(err)
			}
			closeWrite(t, e.client)
			got, err := io.ReadAll(e.server)
			if err != nil || string(got) != "PEEKED-rest" {
				t.Fatalf("server read %q, %v", got, err)
			}
			closeWrite(t, e.server)
			if _, err := io.ReadAll(e.client); err != nil {
				t.Fatal(err)
			}
			r := e.wait(t, 5*time.Second)
			if r.err != nil || r.up != int64(len("PEEKED-rest")) || r.down != 0 {
				t.Fatalf("Proxy = %d, %d, %v", r.up, r.down, r.err)
			}
		})
	}
}

func deadline(e *env, d time.Duration) {
	e.client.SetDeadline(time.Now().Add(d))
	e.server.SetDeadline(time.Now().Add(d))
}

func TestHalfClose(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			e := start(t, m, pipe.Options{Idle: 5 * time.Second})
			deadline(e, 5*time.Second)
			io.WriteString(e.client, "request")
			closeWrite(t, e.client)

			// The server sees the request and its end before answering.
			got, err := io.ReadAll(e.server)
			if err != nil || string(got) != "request" {
				t.Fatalf("server read %q, %v", got, err)
			}
			if _, ok := e.ended(); ok {
				t.Fatal("Proxy ended after one direction")
			}
			if _, err := io.WriteString(e.server, "reply"); err != nil {
				t.Fatalf("server reply: %v", err)
			}
			closeWrite(t, e.server)
			got, err = io.ReadAll(e.client)
			if err != nil || string(got) != "reply" {
				t.Fatalf("client read %q, %v", got, err)
			}
			r := e.wait(t, 5*time.Second)
			if r.err != nil || r.up != 7 || r.down != 5 {
				t.Fatalf("Proxy = %d, %d, %v; want 7, 5, nil", r.up, r.down, r.err)
			}
		})
	}
}

func TestNoCloseWriteEndsBoth(t *testing.T) {
	testutil.CheckLeaks(t)
	e := start(t, modeLoop, pipe.Options{}, func(c net.Conn) net.Conn { return noHalfClose{c} })
	deadline(e, 5*time.Second)
	io.WriteString(e.client, "data")
	closeWrite(t, e.client)
	got, err := io.ReadAll(e.server)
	if err != nil || string(got) != "data" {
		t.Fatalf("server read %q, %v", got, err)
	}
	r := e.wait(t, 5*time.Second)
	if r.err != nil || r.up != 4 {
		t.Fatalf("Proxy = %d, %d, %v", r.up, r.down, r.err)
	}
}

func TestAbortOnReset(t *testing.T) {
	for _, m := range modes {
		for _, side := range []string{"server", "client"} {
			t.Run(fmt.Sprintf("%s/%s-resets", m, side), func(t *testing.T) {
				testutil.CheckLeaks(t)
				e := start(t, m, pipe.Options{})
				deadline(e, 5*time.Second)
				// Some traffic first, so that TLS handshakes are done.
				io.WriteString(e.client, "ping")
				buf := make([]byte, 4)
				if _, err := io.ReadFull(e.server, buf); err != nil {
					t.Fatal(err)
				}
				resetter, other := e.rawServer, e.client
				if side == "client" {
					resetter, other = e.rawClient, e.server
				}
				resetter.SetLinger(0)
				resetter.Close()
				start := time.Now()
				_, err := other.Read(buf)
				if err == nil || errors.Is(err, io.EOF) {
					t.Fatalf("%s side read after the reset: %v, want a reset", side, err)
				}
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Logf("other side read error: %v", err)
				}
				r := e.wait(t, 2*time.Second)
				if r.err == nil || errors.Is(r.err, pipe.ErrIdle) || !errors.Is(r.err, syscall.ECONNRESET) {
					t.Fatalf("Proxy error %v, want a connection reset", r.err)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("abort took %v", d)
				}
			})
		}
	}
}

func TestIdleTimeoutFires(t *testing.T) {
	const idle = 200 * time.Millisecond
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			e := start(t, m, pipe.Options{Idle: idle})
			deadline(e, 5*time.Second)
			r := e.wait(t, 3*time.Second)
			if !errors.Is(r.err, pipe.ErrIdle) {
				t.Fatalf("Proxy error %v, want ErrIdle", r.err)
			}
			if d := r.at.Sub(e.started); d < idle || d > idle+time.Second {
				t.Fatalf("idle timeout after %v, want about %v", d, idle)
			}
			if _, err := e.client.Read(make([]byte, 1)); err == nil {
				t.Fatal("client connection still open")
			}
		})
	}
}

// TestIdleNotWhileTrickling sends one byte every 50ms for 1s in one
// direction, the other direction silent, with an idle timeout of 1s: the
// timeout must not fire until 1s after the last byte. The timeout is 20
// periods long so that a loaded machine's scheduling delays cannot reach it.
func TestIdleNotWhileTrickling(t *testing.T) {
	const (
		idle   = time.Second
		period = 50 * time.Millisecond
		count  = 20
	)
	testutil.CheckLeaks(t)
	var cases []namedCase
	for _, m := range modes {
		for _, dir := range []string{"up", "down"} {
			cases = append(cases, namedCase{string(m) + "/" + dir, func(t testing.TB) {
				e := start(t, m, pipe.Options{Idle: idle})
				deadline(e, 10*time.Second)
				from, to := e.client, e.server
				if dir == "down" {
					from, to = e.server, e.client
				}
				read := make(chan int, 1)
				go func() {
					n, _ := io.ReadFull(to, make([]byte, count))
					read <- n
				}()
				var last time.Time
				for i := range count {
					time.Sleep(period) // the trickle under test: a byte every period, under idle
					if r, ok := e.ended(); ok {
						t.Fatalf("Proxy ended after %d bytes: %v", i, r.err)
					}
					if _, err := from.Write([]byte{'x'}); err != nil {
						t.Fatalf("write %d: %v", i, err)
					}
					last = time.Now()
				}
				if n := <-read; n != count {
					t.Fatalf("received %d bytes, want %d", n, count)
				}
				r := e.wait(t, 3*time.Second)
				if !errors.Is(r.err, pipe.ErrIdle) {
					t.Fatalf("Proxy error %v, want ErrIdle", r.err)
				}
				if d := r.at.Sub(last); d < idle || d > idle+2*time.Second {
					t.Fatalf("idle timeout %v after the last byte, want at least %v", d, idle)
				}
			}})
		}
	}
	concurrently(t, cases)
}

// flood writes to c until the write blocks for good or fails, and returns
// when it fails (once the connection is closed).
func flood(c net.Conn, done chan<- int64) {
	buf := make([]byte, 64<<10)
	var n int64
	for range 4096 { // at most 256 MiB
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	done <- n
}

func TestIdleFiresOnWriteStall(t *testing.T) {
	const idle = 200 * time.Millisecond
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			e := start(t, m, pipe.Options{Idle: idle})
			deadline(e, 10*time.Second)
			// The server never reads: the copy to it blocks once the
			// socket buffers are full.
			flooded := make(chan int64, 1)
			go flood(e.client, flooded)
			r := e.wait(t, 5*time.Second)
			if !errors.Is(r.err, pipe.ErrIdle) {
				t.Fatalf("Proxy error %v, want ErrIdle", r.err)
			}
			n := <-flooded
			t.Logf("up %d bytes of %d written, ended after %v", r.up, n, r.at.Sub(e.started))
		})
	}
}

// TestIdleNotWhileOtherDirectionActive blocks the copy to the server (it
// does not read) while the server trickles bytes to the client: activity in
// one direction keeps the whole connection alive.
func TestIdleNotWhileOtherDirectionActive(t *testing.T) {
	const (
		idle   = time.Second
		period = 50 * time.Millisecond
		count  = 20
	)
	testutil.CheckLeaks(t)
	var cases []namedCase
	for _, m := range modes {
		cases = append(cases, namedCase{string(m), func(t testing.TB) {
			e := start(t, m, pipe.Options{Idle: idle})
			deadline(e, 10*time.Second)
			flooded := make(chan int64, 1)
			go flood(e.client, flooded)
			read := make(chan int, 1)
			go func() {
				n, _ := io.ReadFull(e.client, make([]byte, count))
				read <- n
			}()
			for i := range count {
				time.Sleep(period) // the trickle under test: a byte every period, under idle
				if r, ok := e.ended(); ok {
					t.Fatalf("Proxy ended after %d bytes: %v", i, r.err)
				}
				if _, err := e.server.Write([]byte{'x'}); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			if n := <-read; n != count {
				t.Fatalf("client received %d bytes, want %d", n, count)
			}
			r := e.wait(t, 5*time.Second)
			if !errors.Is(r.err, pipe.ErrIdle) {
				t.Fatalf("Proxy error %v, want ErrIdle", r.err)
			}
			<-flooded
		}})
	}
	concurrently(t, cases)
}

func TestContextCancelClosesPromptly(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			e := start(t, m, pipe.Options{Idle: time.Minute})
			deadline(e, 5*time.Second)
			// A transfer in progress in one direction, the other blocked.
			io.WriteString(e.client, "ping")
			if _, err := io.ReadFull(e.server, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			flooded := make(chan int64, 1)
			go flood(e.server, flooded)
			// The flood goes through the proxy: the client gets its first
			// bytes, then stops reading, so the proxy's writes to it fill
			// the buffers while the cancel comes.
			if _, err := io.ReadFull(e.client, make([]byte, 64<<10)); err != nil {
				t.Fatalf("flood through the proxy: %v", err)
			}
			cause := errors.New("shutting down")
			start := time.Now()
			e.cancel(cause)
			r := e.wait(t, time.Second)
			if !errors.Is(r.err, cause) {
				t.Fatalf("Proxy error %v, want %v", r.err, cause)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("Proxy returned %v after cancel", d)
			}
			<-flooded
			// The client reads what was in flight, then the end (a FIN, or
			// a cut TLS record).
			if _, err := io.ReadAll(e.client); os.IsTimeout(err) {
				t.Fatalf("client connection still open: %v", err)
			}
		})
	}
}

func TestContextDoneBeforeStart(t *testing.T) {
	testutil.CheckLeaks(t)
	cli, pc := tcpPair(t)
	ps, srv := tcpPair(t)
	defer cli.Close()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	up, down, err := pipe.Proxy(ctx, pc, ps, pipe.Options{ClientPending: []byte("x")})
	if !errors.Is(err, context.Canceled) || up != 0 || down != 0 {
		t.Fatalf("Proxy = %d, %d, %v", up, down, err)
	}
	cli.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := cli.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("client connection not closed: %v", err)
	}
	srv.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := srv.Read(make([]byte, 1)); n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("server got %d bytes, %v", n, err)
	}
}

// TestLargeClientPending checks a pending buffer larger than the socket
// buffers with a server that reads slowly.
func TestLargeClientPending(t *testing.T) {
	testutil.CheckLeaks(t)
	pending := bytes.Repeat([]byte("p"), 4<<20)
	e := start(t, modeSplice, pipe.Options{ClientPending: pending, Idle: 5 * time.Second})
	deadline(e, 10*time.Second)
	closeWrite(t, e.client)
	got, err := io.ReadAll(e.server)
	if err != nil || !bytes.Equal(got, pending) {
		t.Fatalf("server read %d bytes, %v", len(got), err)
	}
	closeWrite(t, e.server)
	r := e.wait(t, 5*time.Second)
	if r.err != nil || r.up != int64(len(pending)) {
		t.Fatalf("Proxy = %d, %d, %v", r.up, r.down, r.err)
	}
}

// namedCase is a case of a time-bound test.
type namedCase struct {
	name string
	run  func(t testing.TB)
}

// concurrently runs cases at the same time, beyond the -parallel limit:
// they mostly wait on timers. Failures are reported on t, prefixed with the
// case name; Fatal ends only the case.
func concurrently(t *testing.T, cases []namedCase) {
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(&caseTB{TB: t, name: c.name})
		}()
	}
	wg.Wait()
}

// caseTB reports to the test of concurrently from another goroutine.
type caseTB struct {
	testing.TB
	name string
}

func (c *caseTB) Helper() {}

func (c *caseTB) Errorf(format string, args ...any) {
	c.TB.Errorf("%s: %s", c.name, fmt.Sprintf(format, args...))
}

func (c *caseTB) Error(args ...any) { c.TB.Errorf("%s: %s", c.name, fmt.Sprint(args...)) }

func (c *caseTB) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	runtime.Goexit()
}

func (c *caseTB) Fatal(args ...any) {
	c.Error(args...)
	runtime.Goexit()
}

func (c *caseTB) Logf(format string, args ...any) {
	c.TB.Logf("%s: %s", c.name, fmt.Sprintf(format, args...))
}

// TestManySessionsConcurrently runs many sessions at once (more than one
// event loop's batch of events), each sending a different stream both ways
// to a peer that reads slowly, so that writes are refused and resumed.
func TestManySessionsConcurrently(t *testing.T) {
	for _, m := range []mode{modeLoop, modeSplice} {
		t.Run(string(m), func(t *testing.T) {
			const sessions, size = 150, 300 << 10
			var wg sync.WaitGroup
			errs := make(chan error, 4*sessions)
			for i := range sessions {
				e := start(t, m, pipe.Options{Idle: time.Minute})
				up := pattern(size, byte(i))
				down := pattern(size/3, byte(i+1))
				for _, c := range []net.Conn{e.client, e.server} {
					c.SetDeadline(time.Now().Add(20 * time.Second))
				}
				wg.Add(4)
				go func() { // client writes, then half-closes
					defer wg.Done()
					if _, err := e.client.Write(up); err != nil {
						errs <- fmt.Errorf("client write: %w", err)
					}
					e.client.(*net.TCPConn).CloseWrite()
				}()
				go func() { // server reads slowly
					defer wg.Done()
					got, err := slowReadAll(e.server, i%3 == 0)
					if err != nil || !bytes.Equal(got, up) {
						errs <- fmt.Errorf("session %d: server got %d bytes (%v), want %d", i, len(got), err, len(up))
					}
				}()
				go func() {
					defer wg.Done()
					if _, err := e.server.Write(down); err != nil {
						errs <- fmt.Errorf("server write: %w", err)
					}
					e.server.(*net.TCPConn).CloseWrite()
				}()
				go func() {
					defer wg.Done()
					got, err := slowReadAll(e.client, i%4 == 0)
					if err != nil || !bytes.Equal(got, down) {
						errs <- fmt.Errorf("session %d: client got %d bytes (%v), want %d", i, len(got), err, len(down))
					}
				}()
				defer func() {
					if r := e.wait(t, 10*time.Second); r.err != nil {
						t.Errorf("session %d: Proxy: %v", i, r.err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// pattern returns n bytes that differ between seeds and positions.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// slowReadAll reads c to EOF, in small reads with pauses when slow is set.
func slowReadAll(c net.Conn, slow bool) ([]byte, error) {
	if !slow {
		return io.ReadAll(c)
	}
	var out []byte
	buf := make([]byte, 4<<10)
	for i := 0; ; i++ {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if i%16 == 0 {
			time.Sleep(time.Millisecond) // the slow reader under test
		}
	}
}
