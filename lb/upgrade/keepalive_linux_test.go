package upgrade

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// acceptedKeepAlive dials ln, accepts the connection and returns its
// SO_KEEPALIVE and TCP_KEEPIDLE (seconds).
func acceptedKeepAlive(t *testing.T, ln net.Listener) (on bool, idle int) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	ka, err := testutil.ReadKeepAlive(r.c.(syscall.Conn))
	if err != nil {
		t.Fatal(err)
	}
	return ka.On, ka.Idle
}

// TestInheritedKeepAlive checks that the connections accepted on an
// inherited TCP listener get ListenConfig's keep-alive as those of a fresh
// one do, though net.FileListener's accept would turn it on.
func TestInheritedKeepAlive(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tc := range []struct {
		name     string
		lc       net.ListenConfig
		wantOn   bool
		wantIdle int // checked when on
	}{
		{"off", net.ListenConfig{KeepAlive: -1}, false, 0},
		{"on", net.ListenConfig{KeepAlive: -1, KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 31 * time.Second}}, true, 31},
		{"idle only", net.ListenConfig{KeepAlive: 42 * time.Second}, true, 42},
		{"Go's default", net.ListenConfig{}, true, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := sockPath(t)
			old := newUpgrader(t, path)
			old.ListenConfig = tc.lc
			if err := old.Start(ctx); err != nil {
				t.Fatal(err)
			}
			oldTCP, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer oldTCP.Close()
			if err := old.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			check := func(which string, ln net.Listener) {
				t.Helper()
				on, idle := acceptedKeepAlive(t, ln)
				if on != tc.wantOn || (on && idle != tc.wantIdle) {
					t.Errorf("%s listener: keep-alive %v, idle %d s; want %v, %d s", which, on, idle, tc.wantOn, tc.wantIdle)
				}
			}
			check("fresh", oldTCP)

			successor := newUpgrader(t, path)
			successor.ListenConfig = tc.lc
			if err := successor.Start(ctx); err != nil {
				t.Fatal(err)
			}
			newTCP, err := successor.Listen(ctx, "tcp", oldTCP.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer newTCP.Close()
			if err := successor.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			oldTCP.Close()
			check("inherited", newTCP)
		})
	}
}
