package lb_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestL4ServeConnReturnsWhileSessionLive checks that Pool.ServeConn
// returns once a TCPFrontend's session is on the event loop, that the
// session goes on after it returned, and that its end still comes as
// before: the frontend tracks it until then, and the counters, the Outcome
// and the access record arrive when it ends.
func TestL4ServeConnReturnsWhileSessionLive(t *testing.T) {
	if runtime.GOOS != "linux" || os.Getenv("LBKIT_PIPE") == "goroutines" {
		t.Skip("no event loop: Linux only, and not with LBKIT_PIPE=goroutines")
	}
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update(servers(echo.Addr)))
	returned := make(chan struct{}, 1)
	records := make(chan lb.AccessRecord, 1)
	srv := &lb.TCPFrontend{
		Name: "fe",
		Backend: lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
			pool.ServeConn(ctx, c)
			returned <- struct{}{}
		}),
		AccessLog: lb.AccessLoggerFunc(func(r *lb.AccessRecord) { records <- *r }),
	}
	addr := serveL4(t, srv)

	c := dial(t, addr)
	defer c.Close()
	roundTrip(t, c, "before")
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return while the session is live")
	}
	roundTrip(t, c, "after ServeConn returned")
	if n := srv.ActiveConns(); n != 1 {
		t.Fatalf("ActiveConns = %d while the session is live, want 1", n)
	}
	if fs := srv.Stats(); fs.ConnCur != 1 {
		t.Fatalf("frontend ConnCur = %d while the session is live, want 1", fs.ConnCur)
	}
	if ps := pool.Stats(); ps.Cur != 1 {
		t.Fatalf("pool Cur = %d while the session is live, want 1", ps.Cur)
	}
	select {
	case r := <-records:
		t.Fatalf("access record before the session ended: %+v", r)
	default:
	}

	const up = len("before") + len("after ServeConn returned")
	c.(*net.TCPConn).CloseWrite()
	if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
		t.Fatalf("after the half-close: %d bytes, %v", n, err)
	}
	select {
	case r := <-records:
		if r.BytesIn != int64(up) || r.BytesOut != int64(up) || r.Frontend != "fe" || r.Server == lb.NoServerName {
			t.Fatalf("access record %+v, want %d bytes each way through a server", r, up)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no access record after the session ended")
	}
	testutil.Eventually(t, "the frontend to untrack the session", func() bool {
		return srv.ActiveConns() == 0 && srv.Stats().ConnCur == 0
	})
	ps := pool.Stats()
	if ps.Cur != 0 || ps.BytesIn != int64(up) || ps.BytesOut != int64(up) {
		t.Fatalf("pool stats Cur %d, BytesIn %d, BytesOut %d; want 0, %d, %d", ps.Cur, ps.BytesIn, ps.BytesOut, up, up)
	}
}

// TestL4CloseEndsSessionOnLoop checks that TCPFrontend.Close ends a
// session that outlived ServeConn, and that Shutdown waits for it.
func TestL4CloseEndsSessionOnLoop(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{}
	must(t, pool.Update(servers(echo.Addr)))
	srv, addr := startL4(t, pool)
	c := dial(t, addr)
	defer c.Close()
	roundTrip(t, c, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned with a session open")
	}
	roundTrip(t, c, "still open after Shutdown gave up")
	srv.Close()
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("reading a closed session: %v", err)
	}
	testutil.Eventually(t, "the frontend to untrack the session", func() bool { return srv.ActiveConns() == 0 })
}

// panickyObserver is a Balancer whose Observe panics.
type panickyObserver struct{}

func (panickyObserver) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	return s.Servers[0], nil
}

func (panickyObserver) Observe(*lb.Server, lb.Outcome) { panic("observer boom") }

// TestL4SessionTailRecoversPanics ends sessions whose tail panics (an
// Observer, an AccessLogger) after ServeConn returned: the process
// survives, the frontend counts the error and untracks the connection.
func TestL4SessionTailRecoversPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pool   *lb.Pool
		access lb.AccessLogger
	}{
		{"observer", &lb.Pool{Balancer: panickyObserver{}}, nil},
		{"accesslog", &lb.Pool{}, lb.AccessLoggerFunc(func(*lb.AccessRecord) { panic("log boom") })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			echo := testutil.EchoServer(t)
			tc.pool.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			must(t, tc.pool.Update(servers(echo.Addr)))
			srv := &lb.TCPFrontend{Backend: tc.pool, AccessLog: tc.access}
			addr := serveL4(t, srv)
			for i := range 2 {
				c := dial(t, addr)
				roundTrip(t, c, "x")
				c.(*net.TCPConn).CloseWrite()
				if _, err := io.Copy(io.Discard, c); err != nil {
					t.Fatalf("session %d: %v", i, err)
				}
				c.Close()
			}
			testutil.Eventually(t, "both sessions to be untracked with an error each", func() bool {
				return srv.ActiveConns() == 0 && srv.Stats().ConnCur == 0 && srv.Stats().Errors == 2
			})
		})
	}
}
