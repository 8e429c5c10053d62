package accesslog_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
)

// BenchmarkReverseProxy measures lb.ReverseProxy (as lb's benchmark of the
// same name, without cancelable contexts) with access logging off, and on
// in HAProxy's format or JSON, to io.Discard or to a file, through a
// Writer. Records the Writer dropped are reported as drops/op, the
// process's CPU time (proxy, in-process server and log writer) as
// cpu-ns/op.
func BenchmarkReverseProxy(b *testing.B) {
	addr := testutil.FastBackend(b)
	sinks := []struct {
		name string
		sink func(b *testing.B) accesslog.Sink
	}{
		{"off", nil},
		{"haproxy-discard", func(*testing.B) accesslog.Sink { return accesslog.HAProxy(io.Discard) }},
		{"json-discard", func(*testing.B) accesslog.Sink { return accesslog.Slog(slog.NewJSONHandler(io.Discard, nil)) }},
		{"haproxy-file", func(b *testing.B) accesslog.Sink {
			f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
			if err != nil {
				b.Fatal(err)
			}
			return accesslog.HAProxy(f)
		}},
	}
	for _, s := range sinks {
		b.Run(s.name, func(b *testing.B) {
			pool := &lb.Pool{Name: "web"}
			if err := pool.Update([]lb.Server{{Name: "s1", Addr: addr}}); err != nil {
				b.Fatal(err)
			}
			proxy := &lb.ReverseProxy{Name: "fe", Pool: pool}
			var w *accesslog.Writer
			if s.sink != nil {
				w = accesslog.NewWriter(s.sink(b), 0)
				proxy.AccessLog = w
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				rw := &testutil.DiscardWriter{H: http.Header{}}
				for pb.Next() {
					r := httptest.NewRequest("GET", "http://lb.test/", nil)
					r.RemoteAddr = "127.0.0.1:40000"
					clear(rw.H)
					proxy.ServeHTTP(rw, r)
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			if w != nil {
				w.Close()
				b.ReportMetric(float64(w.Dropped())/float64(b.N), "drops/op")
			}
		})
	}
}
