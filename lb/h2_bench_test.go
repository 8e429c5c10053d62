package lb_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// BenchmarkProxyHTTP2 measures GET requests from an HTTP/2 client over TLS
// through the proxy: "nethttp" serves HTTP/2 with net/http's own server,
// "checked" with lb.ConfigureHTTP2 (x/net/http2's server behind the frame
// check). The client multiplexes the parallel requests over one connection.
func BenchmarkProxyHTTP2(b *testing.B) {
	ca := testutil.NewCA(b)
	backend := testutil.FastBackend(b)
	for _, checked := range []bool{false, true} {
		name := "nethttp"
		if checked {
			name = "checked"
		}
		b.Run(name, func(b *testing.B) {
			pool := &lb.Pool{}
			must(b, pool.Update([]lb.Server{{Addr: backend}}))
			proxy := &lb.ReverseProxy{Pool: pool}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(b, err)
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
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
		})
	}
}
