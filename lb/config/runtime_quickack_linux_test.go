package config_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestRuntimeQuickAck: an HTTP frontend's accepted connections have the
// kernel's quick ACKs off by default (the listener is plain TCP, and the
// lbkit engine delays ACKs on it), and on with RuntimeOptions.QuickAck.
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
			web := httpServers(t, "web", nil, "127.0.0.2")
			port := freePort(t)
			doc := fmt.Sprintf(`{
			  "lb": {"id": "lb-1"},
			  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
			  "frontends": [{"id": "f-http", "name": "plain", "inbound_port": %d, "backend_id": "web"}]
			}`, web.port, web.pool(), port)
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
				c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, c)
				c.Close()
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
