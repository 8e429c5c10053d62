package pipe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
	"github.com/lbkit/lbkit/internal/testutil"
)

// started is a Start call between a test client and a test server, with
// plain TCP connections (the event loop on Linux) or, with goroutines set,
// the splice path.
type started struct {
	client, server *net.TCPConn
	async          bool
	calls          atomic.Int32
	res            chan pipe.Result // buffered: one result per done call
}

// startTCP calls Start between new TCP connections and returns once Start
// has returned. The connections are closed and done is awaited by a
// cleanup.
func startTCP(t *testing.T, ctx context.Context, opt pipe.Options) *started {
	t.Helper()
	cli, pc := tcpPair(t)
	ps, srv := tcpPair(t)
	s := &started{client: cli, server: srv, res: make(chan pipe.Result, 4)}
	returned := make(chan bool, 1)
	go func() {
		returned <- pipe.Start(ctx, pc, ps, opt, func(r pipe.Result) {
			s.calls.Add(1)
			s.res <- r
		})
	}()
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
		select {
		case r := <-s.res:
			s.res <- r
		case <-time.After(5 * time.Second):
			t.Error("done not called after the test")
		}
	})
	if opt.Goroutines || runtime.GOOS != "linux" {
		// Start copies on the calling goroutine: it returns at the end.
		return s
	}
	select {
	case s.async = <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return while the session is live")
	}
	if !s.async {
		t.Fatal("Start returned false between two TCP connections on Linux")
	}
	return s
}

// wait returns the result done received, failing the test if done is not
// called within d, and checks, a little later, that it was called once.
func (s *started) wait(t *testing.T, d time.Duration) pipe.Result {
	t.Helper()
	select {
	case r := <-s.res:
		s.res <- r
		time.Sleep(50 * time.Millisecond) // room for a second call
		if n := s.calls.Load(); n != 1 {
			t.Fatalf("done called %d times, want 1", n)
		}
		if r.OnLoop != s.async {
			t.Fatalf("done got OnLoop %v, Start returned %v", r.OnLoop, s.async)
		}
		return r
	case <-time.After(d):
		t.Fatalf("done not called after %v", d)
		return pipe.Result{}
	}
}

// startModes are the paths of a Start call between two TCP connections:
// the event loop, where Start returns at once, and the splice path, where
// it returns at the end.
var startModes = []struct {
	name string
	opt  pipe.Options
}{{"loop", pipe.Options{}}, {"goroutines", pipe.Options{Goroutines: true}}}

// TestStartNormalEnd exchanges bytes through a session after Start
// returned, half-closes both ways and checks that done is called once, with
// the bytes of each direction and no error.
func TestStartNormalEnd(t *testing.T) {
	for _, m := range startModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			opt := m.opt
			opt.ClientPending = []byte("hello ")
			s := startTCP(t, context.Background(), opt)
			for _, c := range []net.Conn{s.client, s.server} {
				c.SetDeadline(time.Now().Add(5 * time.Second))
			}
			if _, err := io.WriteString(s.client, "world"); err != nil {
				t.Fatal(err)
			}
			closeWrite(t, s.client)
			got, err := io.ReadAll(s.server)
			if err != nil || string(got) != "hello world" {
				t.Fatalf("server read %q, %v", got, err)
			}
			if _, err := io.WriteString(s.server, "reply of 16 bytes"[:16]); err != nil {
				t.Fatal(err)
			}
			closeWrite(t, s.server)
			got, err = io.ReadAll(s.client)
			if err != nil || len(got) != 16 {
				t.Fatalf("client read %q, %v", got, err)
			}
			r := s.wait(t, 5*time.Second)
			if r.Up != 11 || r.Down != 16 || r.Err != nil {
				t.Fatalf("done got %+v, want up 11, down 16, no error", r)
			}
		})
	}
}

// TestStartErrorEnd resets the server's connection mid-session: done gets
// the reset as a *pipe.Error on the server's side, and the bytes moved
// before it.
func TestStartErrorEnd(t *testing.T) {
	for _, m := range startModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			s := startTCP(t, context.Background(), m.opt)
			for _, c := range []net.Conn{s.client, s.server} {
				c.SetDeadline(time.Now().Add(5 * time.Second))
			}
			io.WriteString(s.client, "ping")
			buf := make([]byte, 4)
			if _, err := io.ReadFull(s.server, buf); err != nil {
				t.Fatal(err)
			}
			s.server.SetLinger(0)
			s.server.Close()
			r := s.wait(t, 5*time.Second)
			// The splice path cannot tell whose connection failed.
			var pe *pipe.Error
			if !errors.As(r.Err, &pe) || !errors.Is(r.Err, syscall.ECONNRESET) || !m.opt.Goroutines && !pe.Server() {
				t.Fatalf("done got error %v, want a reset of the server's connection", r.Err)
			}
			if r.Up != 4 || r.Down != 0 {
				t.Fatalf("done got up %d, down %d, want 4, 0", r.Up, r.Down)
			}
		})
	}
}

// TestStartIdleAndCancel ends silent sessions by the idle timeout and by
// their context: done gets ErrIdle, or the context's cause.
func TestStartIdleAndCancel(t *testing.T) {
	for _, m := range startModes {
		t.Run(m.name+"/idle", func(t *testing.T) {
			testutil.CheckLeaks(t)
			opt := m.opt
			opt.Idle = 100 * time.Millisecond
			s := startTCP(t, context.Background(), opt)
			if r := s.wait(t, 5*time.Second); !errors.Is(r.Err, pipe.ErrIdle) || r.Up != 0 || r.Down != 0 {
				t.Fatalf("done got %+v, want ErrIdle", r)
			}
		})
		t.Run(m.name+"/cancel", func(t *testing.T) {
			testutil.CheckLeaks(t)
			cause := errors.New("frontend closed")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			s := startTCP(t, ctx, m.opt)
			s.client.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(s.client, "abc")
			if _, err := io.ReadFull(s.server, make([]byte, 3)); err != nil {
				t.Fatal(err)
			}
			cancel(cause)
			if r := s.wait(t, 5*time.Second); !errors.Is(r.Err, cause) || r.Up != 3 {
				t.Fatalf("done got %+v, want up 3 and the context's cause", r)
			}
			if _, err := s.client.Read(make([]byte, 1)); err == nil {
				t.Fatal("client connection still open after the cancellation")
			}
		})
	}
}

// TestStartContextDoneBefore calls Start with a context already done: done
// is called before Start returns, which returns false.
func TestStartContextDoneBefore(t *testing.T) {
	testutil.CheckLeaks(t)
	cli, pc := tcpPair(t)
	ps, srv := tcpPair(t)
	defer cli.Close()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls int
	var got pipe.Result
	async := pipe.Start(ctx, pc, ps, pipe.Options{}, func(r pipe.Result) {
		calls++
		got = r
	})
	if async || calls != 1 || !errors.Is(got.Err, context.Canceled) || got.OnLoop {
		t.Fatalf("Start = %v, done called %d times with %+v", async, calls, got)
	}
}
