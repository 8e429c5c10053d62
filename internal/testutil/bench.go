package testutil

import (
	"net"
	"net/http"
	"testing"
)

// FastBackend starts an HTTP server on 127.0.0.1 that answers every
// request with a fixed 64-byte body and nothing else, for benchmarks that
// measure the proxy rather than the server. It stops at tb.Cleanup.
func FastBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	body := make([]byte, 64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"64"}
		w.Write(body)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// DiscardWriter is an http.ResponseWriter that keeps nothing but its
// header map, so that a benchmark measures the handler rather than a
// recorder.
type DiscardWriter struct{ H http.Header }

// Header returns w.H.
func (w *DiscardWriter) Header() http.Header { return w.H }

// Write discards p.
func (w *DiscardWriter) Write(p []byte) (int, error) { return len(p), nil }

// WriteHeader does nothing.
func (w *DiscardWriter) WriteHeader(int) {}
