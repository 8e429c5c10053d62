package http3_test

import (
	"net/http"
	"testing"
)

// BenchmarkProxyGET measures a GET through the ReverseProxy over HTTP/3 on
// one QUIC connection, to an HTTP/1.1 backend, with parallel requests.
func BenchmarkProxyGET(b *testing.B) {
	e := newEnv(b, nil, nil, nil)
	c := newClient(b, e.ca.Pool(), nil)
	url := e.url("/")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, _, err := do(c.Client, http.MethodGet, url, nil)
			if err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %s", resp.Status)
				return
			}
		}
	})
}
