package statuspage_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/statuspage"
)

// A Handler shows the pools and frontends added to it, as a page that
// refreshes itself and, with ?format=json, as JSON.
func Example() {
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{
		{Name: "a", Addr: "10.0.0.1:8080"},
		{Name: "b", Addr: "10.0.0.2:8080", Weight: 2},
	}); err != nil {
		panic(err)
	}
	proxy := &lb.ReverseProxy{Name: "www", Pool: pool}

	page := &statuspage.Handler{Title: "edge", Refresh: 10 * time.Second}
	page.AddPool(pool.Name, pool)
	page.AddFrontend(proxy.Name, proxy)
	mux := http.NewServeMux()
	mux.Handle("GET /status", page) // served to operators only

	pool.SetState("b", lb.StateMaintenance, "upgrade")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/status?format=json", nil))
	var r statuspage.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		panic(err)
	}
	fmt.Println(rec.Header().Get("Content-Type"))
	fmt.Println("frontend", r.Frontends[0].Name)
	for _, b := range r.Backends {
		fmt.Println("backend", b.Name, b.Status)
		for _, s := range b.Servers {
			fmt.Printf("  %s %s weight %d %q\n", s.Name, s.Status, s.Weight, s.Reason)
		}
	}

	page.RemovePool(pool.Name)
	fmt.Println(len(page.Report().Backends), "backends")
	// Output:
	// application/json
	// frontend www
	// backend web UP
	//   a UP weight 1 ""
	//   b MAINT weight 2 "upgrade"
	// 0 backends
}
