package config_test

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestRuntimeQuickAck: an HTTP frontend's accepted connections have the
// kernel's quick ACKs off by default (the lbkit engine sets each
// connection the port hands it), and on with RuntimeOptions.QuickAck.
func TestRuntimeQuickAck(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tc := range []struct {
		name     string
		quickAck bool
		want     int
	}{
		{"default", false, 0},
		{"QuickAck", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, port := plainFrontendDoc(t)
			got := make(chan int, 2)
			hook := func(c net.Conn, st http.ConnState) {
				if st != http.StateNew {
					return
				}
				v := -1
				if sc, ok := socketOf(c); ok {
					if rc, err := sc.SyscallConn(); err == nil {
						rc.Control(func(fd uintptr) {
							v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
						})
					}
				}
				select {
				case got <- v:
				default:
				}
			}
			rt := newRuntime(t, config.RuntimeOptions{ConnState: hook, QuickAck: tc.quickAck})
			apply(t, rt, doc)
			// Two connections in turn: the kernel may have accepted the
			// first before the frontend set its listener up.
			var v int
			for range 2 {
				getOnce(t, port)
				select {
				case v = <-got:
				case <-time.After(10 * time.Second):
					t.Fatal("ConnState never saw the connection")
				}
			}
			if v != tc.want {
				t.Errorf("accepted connection's TCP_QUICKACK = %d, want %d", v, tc.want)
			}
		})
	}
}
