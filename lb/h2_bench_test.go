package lb_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// BenchmarkProxyHTTP2 measures GET requests from an HTTP/2 client over TLS
// through the proxy: "nethttp" serves HTTP/2 with net/http's own server,
// "checked" with lb.ConfigureHTTP2 (x/net/http2's server behind the frame
// check, its writes batched). The client multiplexes the parallel requests
// (GOMAXPROCS of them, or 32 in "checked-32streams") over one connection.
// writes/op counts the writes to the client connection per request.
func BenchmarkProxyHTTP2(b *testing.B) {
	ca := testutil.NewCA(b)
	backend := testutil.FastBackend(b)
	for _, bc := range []struct {
		name    string
		checked bool
		streams int
	}{{"nethttp", false, 0}, {"checked", true, 0}, {"checked-32streams", true, 32}} {
		name, checked := bc.name, bc.checked
		b.Run(name, func(b *testing.B) {
			pool := &lb.Pool{}
			must(b, pool.Update([]lb.Server{{Addr: backend}}))
			proxy := &lb.ReverseProxy{Pool: pool}
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			must(b, err)
			ln := &countListener{Listener: tcp}
			srv := &http.Server{Handler: proxy, TLSConfig: ca.ServerConfig(b, "localhost")}
			srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
			if checked {
				must(b, lb.ConfigureHTTP2(srv, lb.HTTP2Options{}))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- lb.ServeTLS(ctx, srv, ln, time.Second, proxy) }()
			defer func() {
				cancel()
				<-done
			}()
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig("localhost"), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "https://" + ln.Addr().String() + "/"
			get := func() {
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 {
					b.Errorf("response over %s, want HTTP/2", resp.Proto)
				}
			}
			get() // the connection, outside the measure
			if bc.streams > 0 {
				b.SetParallelism((bc.streams + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			}
			b.ReportAllocs()
			b.ResetTimer()
			before := ln.writes.Load()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			b.ReportMetric(float64(ln.writes.Load()-before)/float64(b.N), "writes/op")
		})
	}
}

// countListener counts the writes to the connections it accepts.
type countListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, writes: &l.writes}, nil
}

// countedConn is a connection of countListener.
type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
