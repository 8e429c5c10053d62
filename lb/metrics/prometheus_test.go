package metrics_test

import (
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestPrometheusScrapes runs a real Prometheus server on 127.0.0.1 that
// scrapes the collector every second, and checks through its query API
// that the requests it counts per server are those that were sent.
func TestPrometheusScrapes(t *testing.T) {
	s := newSetup(t)
	s.traffic(t)
	prom := testutil.StartPrometheus(t, serveMetrics(t, s.collect))

	want := map[string]float64{"a": float64(s.a.Requests()), "b": float64(s.b.Requests())}
	if want["a"]+want["b"] != 6 {
		t.Fatalf("backends received %v requests, want 6 in all", want)
	}
	prom.WaitQuery(t, `sum by (server) (lbkit_server_http_requests_total{job="lbkit",proxy="web"})`,
		func(r map[string]float64) bool { return len(r) == 2 && r["a"] == want["a"] && r["b"] == want["b"] })
	prom.WaitQuery(t, `lbkit_backend_http_responses_total{job="lbkit",proxy="web",code="4xx"}`,
		func(r map[string]float64) bool { return r[""] == 2 })
}
