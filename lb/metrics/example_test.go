package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/metrics"
)

// A program exports its pool and frontend on /metrics, beside the proxy.
// Here the metrics are read through an httptest recorder, as Prometheus
// would scrape them.
func Example() {
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{
		{Name: "a", Addr: "127.0.0.1:8081"},
		{Name: "b", Addr: "127.0.0.1:8082"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	pool.SetState("b", lb.StateMaintenance, "upgrade")
	proxy := &lb.ReverseProxy{Name: "www", Pool: pool}

	c := &metrics.Collector{} // namespace "lbkit"
	c.AddPool("web", pool)
	c.AddFrontend("www", proxy)

	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.Handle("GET /metrics", metrics.Handler(c))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "lbkit_server_status{") || strings.HasPrefix(line, "lbkit_backend_active_servers{") {
			fmt.Print(line)
		}
	}
	// Output:
	// lbkit_backend_active_servers{proxy="web"} 1
	// lbkit_server_status{proxy="web",server="a",state="DOWN"} 0
	// lbkit_server_status{proxy="web",server="a",state="DRAIN"} 0
	// lbkit_server_status{proxy="web",server="a",state="MAINT"} 0
	// lbkit_server_status{proxy="web",server="a",state="UP"} 1
	// lbkit_server_status{proxy="web",server="b",state="DOWN"} 0
	// lbkit_server_status{proxy="web",server="b",state="DRAIN"} 0
	// lbkit_server_status{proxy="web",server="b",state="MAINT"} 1
	// lbkit_server_status{proxy="web",server="b",state="UP"} 0
}
