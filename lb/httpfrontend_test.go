package lb_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// The lb tests serve L7 through lbkit's HTTP/1.1 engine (lb.HTTPFrontend),
// or through net/http's server when LBKIT_TEST_HTTP_ENGINE=net/http. The
// tests that run under forEngines run over both, as subtests.
const (
	engineLbkit   = "lbkit"
	engineNetHTTP = "nethttp"
)

// testEngine is the engine of t: the one of the forEngines subtest it
// runs under, else the environment's choice.
func testEngine(tb testing.TB) string {
	for _, part := range strings.Split(tb.Name(), "/") {
		switch part {
		case "engine=" + engineLbkit:
			return engineLbkit
		case "engine=" + engineNetHTTP:
			return engineNetHTTP
		}
	}
	if os.Getenv("LBKIT_TEST_HTTP_ENGINE") == "net/http" {
		return engineNetHTTP
	}
	return engineLbkit
}

// forEngines runs f over both engines, as subtests.
func forEngines(t *testing.T, f func(t *testing.T)) {
	for _, e := range []string{engineLbkit, engineNetHTTP} {
		t.Run("engine="+e, f)
	}
}

// frontendOf returns the frontend that serves srv in tb's engine.
func frontendOf(tb testing.TB, srv *http.Server) lb.TLSFrontend {
	tb.Helper()
	if testEngine(tb) == engineNetHTTP {
		return srv
	}
	fe, err := lb.NewHTTPFrontend(srv)
	if err != nil {
		tb.Fatalf("NewHTTPFrontend: %v", err)
	}
	return fe
}

// BenchmarkHTTPFrontend measures keep-alive GET requests end to end over
// loopback, through a ReverseProxy served by each engine, to a server
// answering 64 bytes: the client, the proxy and the server run in the
// process, so allocations and time are those of all three, and only the
// difference between the engines is the frontend's.
func BenchmarkHTTPFrontend(b *testing.B) {
	backend := testutil.FastBackend(b)
	for _, engine := range []string{engineLbkit, engineNetHTTP} {
		b.Run("engine="+engine, func(b *testing.B) {
			pool := &lb.Pool{}
			must(b, pool.Update([]lb.Server{{Addr: backend}}))
			proxy := &lb.ReverseProxy{Pool: pool}
			srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, ConnState: proxy.ConnState}
			addr := serveBench(b, frontendOf(b, srv), proxy)
			req := []byte("GET / HTTP/1.1\r\nHost: lb.test\r\n\r\n")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				for pb.Next() {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readResponse64(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// readResponse64 reads one response head and its 64-byte body from c.
func readResponse64(c net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && n-i-4 >= 64 {
			if n-i-4 > 64 {
				return fmt.Errorf("%d bytes after the body", n-i-4-64)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}
