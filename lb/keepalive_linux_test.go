package lb_test

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// keepAlive is a socket's TCP keep-alive setting as the kernel reports it.
type keepAlive = testutil.KeepAlive

// readKeepAlive reads the keep-alive setting of c's socket.
func readKeepAlive(t *testing.T, c any) keepAlive {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T is not a syscall.Conn", c)
	}
	ka, err := testutil.ReadKeepAlive(sc)
	if err != nil {
		t.Fatal(err)
	}
	return ka
}

var keepAliveCases = []struct {
	name string
	ka   net.KeepAliveConfig
	want keepAlive // idle, interval and count checked only when on
}{
	{"default off", net.KeepAliveConfig{}, keepAlive{}},
	{"on", net.KeepAliveConfig{Enable: true, Idle: 31 * time.Second, Interval: 7 * time.Second, Count: 4}, keepAlive{On: true, Idle: 31, Interval: 7, Count: 4}},
	{"on with Go's defaults", net.KeepAliveConfig{Enable: true}, keepAlive{On: true, Idle: 15, Interval: 15, Count: 9}},
}

func checkKeepAlive(t *testing.T, side string, got, want keepAlive) {
	t.Helper()
	if !want.On {
		got.Idle, got.Interval, got.Count = 0, 0, 0
	}
	if got != want {
		t.Errorf("%s: keep-alive %+v, want %+v", side, got, want)
	}
}

// acceptOne accepts one connection on ln and returns it (nil on error).
func acceptOne(t *testing.T, ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		ch <- c
	}()
	return ch
}

func TestListenKeepAliveAccepted(t *testing.T) {
	for _, tc := range keepAliveCases {
		t.Run(tc.name, func(t *testing.T) {
			var lc net.ListenConfig
			lb.ListenKeepAlive(&lc, tc.ka)
			ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			checkKeepAlive(t, "accepted", readKeepAlive(t, dialAccepted(t, ln)), tc.want)
		})
	}
}

// TestKeepAliveListenerInherited checks that a listener made from a file,
// as lb/upgrade hands sockets over, gets the setting through
// KeepAliveListener even though its own accept turns keep-alive on.
func TestKeepAliveListenerInherited(t *testing.T) {
	for _, tc := range keepAliveCases {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			f, err := orig.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			inherited, err := net.FileListener(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			ln := lb.KeepAliveListener(inherited, tc.ka)
			defer ln.Close()
			checkKeepAlive(t, "accepted", readKeepAlive(t, dialAccepted(t, ln)), tc.want)
		})
	}
}

// TestPoolTCPKeepAliveDialed checks the socket a Pool dials to its server,
// as its ProxyHeader sees it.
func TestPoolTCPKeepAliveDialed(t *testing.T) {
	for _, tc := range keepAliveCases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			accepted := acceptOne(t, srv)
			got := make(chan keepAlive, 1)
			p := &lb.Pool{TCPKeepAlive: tc.ka, ProxyHeader: func(w io.Writer, _ *lb.ConnInfo, _ *lb.Server) error {
				got <- readKeepAlive(t, w)
				return nil
			}}
			if err := p.Update([]lb.Server{{Name: "s", Addr: srv.Addr().String()}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := p.DialContext(ctx, "tcp", "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if sc := <-accepted; sc != nil {
				sc.Close()
			}
			checkKeepAlive(t, "dialed", <-got, tc.want)
		})
	}
}

// dialAccepted dials ln and returns the connection ln accepted, closed
// with the test.
func dialAccepted(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	accepted := acceptOne(t, ln)
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}
