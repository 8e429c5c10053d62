package lb_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// benchHandler drives h with GET requests from a loopback client address,
// as http.Server would, in parallel. With cancelable, each request has a
// context that can be canceled, as http.Server gives them (a child of the
// connection's); otherwise context.Background, which transports need not
// watch.
func benchHandler(b *testing.B, h http.Handler, cancelable bool) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &testutil.DiscardWriter{H: http.Header{}}
		connCtx, cancelConn := context.WithCancel(context.Background())
		defer cancelConn()
		for pb.Next() {
			r := httptest.NewRequest("GET", "http://lb.test/", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			var cancel context.CancelFunc
			if cancelable {
				var ctx context.Context
				ctx, cancel = context.WithCancel(connCtx)
				r = r.WithContext(ctx)
			}
			clear(w.H)
			h.ServeHTTP(w, r)
			if cancel != nil {
				cancel()
			}
		}
	})
}

// BenchmarkReverseProxy compares lb.ReverseProxy with a plain
// httputil.ReverseProxy tuned the same way (the baseline of the
// end-to-end benchmark), over keep-alive connections to one loopback server.
// The request construction is included in both.
//
// The "-ctx" variants give each request a cancelable context, as
// http.Server does, which the transports then watch.
func BenchmarkReverseProxy(b *testing.B) {
	addr := testutil.FastBackend(b)
	for _, cancelable := range []bool{false, true} {
		suffix := ""
		if cancelable {
			suffix = "-ctx"
		}
		b.Run("lbkit"+suffix, func(b *testing.B) {
			pool := &lb.Pool{}
			if err := pool.Update([]lb.Server{{Addr: addr}}); err != nil {
				b.Fatal(err)
			}
			benchHandler(b, &lb.ReverseProxy{Pool: pool}, cancelable)
		})
		b.Run("httputil"+suffix, func(b *testing.B) { benchHTTPUtil(b, addr, cancelable) })
	}
}

// benchHTTPUtil is the baseline of BenchmarkReverseProxy.
func benchHTTPUtil(b *testing.B, addr string, cancelable bool) {
	target := &url.URL{Scheme: "http", Host: addr}
	var bufs sync.Pool
	bufs.New = func() any { s := make([]byte, 32<<10); return &s }
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableCompression:    true,
			WriteBufferSize:       16 << 10,
			ReadBufferSize:        16 << 10,
		},
		BufferPool: bufferPoolFunc{&bufs},
		ErrorLog:   nil,
	}
	benchHandler(b, rp, cancelable)
}

type bufferPoolFunc struct{ p *sync.Pool }

func (f bufferPoolFunc) Get() []byte  { return *(f.p.Get().(*[]byte)) }
func (f bufferPoolFunc) Put(b []byte) { f.p.Put(&b) }

// BenchmarkReverseProxyBody measures requests with a 1 KiB body: of known
// length, and chunked as net/http's server hands it over (the data and
// io.EOF from one read), which the proxy reads before choosing a server
// and sends on with a Content-Length.
func BenchmarkReverseProxyBody(b *testing.B) {
	addr := testutil.FastBackend(b)
	payload := strings.Repeat("a", 1024)
	for _, chunked := range []bool{false, true} {
		name := "content-length"
		if chunked {
			name = "chunked"
		}
		b.Run(name, func(b *testing.B) {
			pool := &lb.Pool{}
			if err := pool.Update([]lb.Server{{Addr: addr}}); err != nil {
				b.Fatal(err)
			}
			proxy := &lb.ReverseProxy{Pool: pool}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &testutil.DiscardWriter{H: http.Header{}}
				for pb.Next() {
					r := httptest.NewRequest("POST", "http://lb.test/", strings.NewReader(payload))
					r.RemoteAddr = "127.0.0.1:40000"
					if chunked {
						r.Body = io.NopCloser(iotest.DataErrReader(strings.NewReader(payload)))
						r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
					}
					clear(w.H)
					proxy.ServeHTTP(w, r)
				}
			})
		})
	}
}
