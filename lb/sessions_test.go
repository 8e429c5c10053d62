package lb_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// echoOnce writes msg on c and reads it back.
func echoOnce(t *testing.T, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := fmt.Fprint(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: got %q, %v", msg, buf, err)
	}
}

func TestShutdownOnDownL4(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shutdown bool
		to       lb.State
		closed   bool
	}{
		{"off: sessions continue", false, lb.StateDown, false},
		{"on: down closes sessions", true, lb.StateDown, true},
		{"on: going down keeps them", true, lb.StateGoingDown, false},
		{"on: maintenance keeps them", true, lb.StateMaintenance, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			echo := testutil.EchoServer(t)
			pool := &lb.Pool{Name: "echo", ShutdownOnDown: tc.shutdown}
			must(t, pool.Update([]lb.Server{{Name: "a", Addr: echo.Addr}}))
			_, addr := startL4(t, pool)
			c := dial(t, addr)
			defer c.Close()
			echoOnce(t, c, "before")
			tracked := 0
			if tc.shutdown {
				tracked = 1
			}
			if n := pool.TrackedSessions("a"); n != tracked {
				t.Fatalf("%d sessions tracked before the change, want %d", n, tracked)
			}

			pool.SetState("a", tc.to, "test")
			// The sessions to close are taken at once; the close itself
			// is asynchronous, so the echo below alone could beat it.
			if tc.closed {
				tracked = 0
			}
			if n := pool.TrackedSessions("a"); n != tracked {
				t.Fatalf("%d sessions tracked after %v, want %d", n, tc.to, tracked)
			}
			if tc.closed {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
					t.Fatalf("session still open after the server went down: %d, %v", n, err)
				}
				testutil.Eventually(t, "no active session after shutdown", func() bool { return pool.Status()[0].Active == 0 })
				return
			}
			echoOnce(t, c, "after")
		})
	}
}

func TestShutdownOnDownUpgradedStream(t *testing.T) {
	testutil.CheckLeaks(t)
	ws := testutil.HTTPBackend(t, "ws")
	pool := &lb.Pool{ShutdownOnDown: true}
	must(t, pool.Update(servers(ws.Addr)))
	proxy := &lb.ReverseProxy{Pool: pool}
	url, _ := startL7(t, proxy, time.Second)
	c, br := dialUpgrade(t, url)
	defer c.Close()
	echoLine(t, c, br, "one")
	pool.SetState(ws.Addr, lb.StateDown, "test")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("upgraded stream still open after the server went down")
	}
	testutil.Eventually(t, "no stream tracked after shutdown", func() bool { return proxy.ActiveStreams() == 0 })
}

func TestSetHealthKeepsMaintenance(t *testing.T) {
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}}))
	var hs lb.ServerSet = pool
	steps := []struct {
		health bool // SetHealth, else SetState
		st     lb.State
		want   lb.State
	}{
		{true, lb.StateDown, lb.StateDown},
		{false, lb.StateMaintenance, lb.StateMaintenance},
		{true, lb.StateUp, lb.StateMaintenance},
		{true, lb.StateDown, lb.StateMaintenance},
		{false, lb.StateUp, lb.StateUp},
		{true, lb.StateGoingDown, lb.StateGoingDown},
	}
	for i, s := range steps {
		if s.health {
			if !hs.SetHealth("a", s.st, "r") {
				t.Fatalf("step %d: SetHealth reported no server", i)
			}
		} else {
			pool.SetState("a", s.st, "")
		}
		if got := pool.Status()[0].State; got != s.want {
			t.Fatalf("step %d: state %v, want %v", i, got, s.want)
		}
	}
	if hs.SetHealth("nope", lb.StateUp, "") {
		t.Fatal("SetHealth on an unknown server reported true")
	}
}
