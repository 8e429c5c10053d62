package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestLBProxyClientTimeouts: -request-timeout closes a client that never
// finishes its headers, and -min-body-rate with its grace answers 408 to a
// client that sends its body too slowly, closing its connection.
func TestLBProxyClientTimeouts(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	const requestTimeout, grace = 300 * time.Millisecond, 200 * time.Millisecond
	cfg := withFlags(t, "-backends", b.Addr, "-request-timeout", requestTimeout.String(),
		"-min-body-rate", "1000", "-min-body-rate-grace", grace.String(), "-client-timeout", "5s")
	addr := start(t, cfg)

	dial := func(t *testing.T) net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	// start is taken before the dial: the proxy's timers start when it
	// accepts, which may come before the client's dial returns.
	t.Run("headers", func(t *testing.T) {
		start := time.Now()
		c := dial(t)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: lb.test\r\n") // never ends
		n, err := io.Copy(io.Discard, c)
		if d := time.Since(start); err != nil || d < requestTimeout || d > requestTimeout+3*time.Second {
			t.Errorf("closed after %v (%d bytes, %v); want EOF after %v", d, n, err, requestTimeout)
		}
	})
	t.Run("body", func(t *testing.T) {
		start := time.Now()
		c := dial(t)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 4096\r\n\r\nab") // then nothing
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || !resp.Close || d < grace || d > grace+3*time.Second {
			t.Errorf("got %d (close %v) after %v; want 408 and close after %v", resp.StatusCode, resp.Close, d, grace)
		}
	})
}
