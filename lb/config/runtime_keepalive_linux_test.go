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

// socketOf returns the syscall.Conn under c, through Unwrap and NetConn.
func socketOf(c net.Conn) (syscall.Conn, bool) {
	for {
		if _, ok := c.(*net.TCPConn); ok {
			return c.(syscall.Conn), true
		}
		switch u := c.(type) {
		case interface{ Unwrap() net.Conn }:
			c = u.Unwrap()
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
		default:
			return nil, false
		}
	}
}

// TestRuntimeClientTCPKeepAlive: the connections a frontend accepts on a
// listener the Runtime opens have no TCP keep-alive by default, and
// RuntimeOptions.ClientTCPKeepAlive's when it is set.
func TestRuntimeClientTCPKeepAlive(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tc := range []struct {
		name     string
		ka       net.KeepAliveConfig
		wantOn   bool
		wantIdle int
	}{
		{"default off", net.KeepAliveConfig{}, false, 0},
		{"on", net.KeepAliveConfig{Enable: true, Idle: 31 * time.Second}, true, 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, port := plainFrontendDoc(t)
			type result struct {
				on   bool
				idle int
				err  error
			}
			got := make(chan result, 1)
			hook := func(c net.Conn, st http.ConnState) {
				if st != http.StateNew {
					return
				}
				var r result
				sc, ok := socketOf(c)
				if !ok {
					r.err = fmt.Errorf("no socket under %T", c)
				} else {
					var ka testutil.KeepAlive
					ka, r.err = testutil.ReadKeepAlive(sc)
					r.on, r.idle = ka.On, ka.Idle
				}
				select {
				case got <- r:
				default:
				}
			}
			rt := newRuntime(t, config.RuntimeOptions{ConnState: hook, ClientTCPKeepAlive: tc.ka})
			apply(t, rt, doc)
			getOnce(t, port)
			var r result
			select {
			case r = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("ConnState never saw the connection")
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.on != tc.wantOn || (r.on && r.idle != tc.wantIdle) {
				t.Errorf("accepted connection: keep-alive %v, idle %d s; want %v, %d s", r.on, r.idle, tc.wantOn, tc.wantIdle)
			}
		})
	}
}

// plainFrontendDoc returns a configuration with one HTTP frontend, on a
// free port it returns too, in front of an HTTP server.
func plainFrontendDoc(t *testing.T) (doc string, port int) {
	web := httpServers(t, "web", nil, "127.0.0.2")
	port = freePort(t)
	return fmt.Sprintf(`{
	  "lb": {"id": "lb-1"},
	  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [{"id": "f-http", "name": "plain", "inbound_port": %d, "backend_id": "web"}]
	}`, web.port, web.pool(), port), port
}

// getOnce makes one request on a connection of its own to the frontend on
// port, and reads the response to the end.
func getOnce(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
}
