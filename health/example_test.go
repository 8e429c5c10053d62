package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
)

func ExampleHTTP() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fmt.Println(health.HTTP{Path: "/healthz", Body: "ready"}.Check(ctx, health.Target{Addr: addr}))
	err := health.HTTP{Path: "/missing"}.Check(ctx, health.Target{Addr: addr})
	fmt.Println(err)
	// Output:
	// <nil>
	// http: health: check refused: status 404 Not Found, want 200-399
}

func ExampleMonitor() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	mon := &health.Monitor{
		Probe:    health.TCP{},
		Interval: 50 * time.Millisecond,
		OnChange: func(e health.Event) {
			fmt.Printf("%s/%s: %s -> %s\n", e.Pool, e.Server, e.From, e.To)
		},
	}
	// No traffic before a check passes, which the Monitor reports.
	pool := &lb.Pool{Name: "web", HealthChecker: mon, InitialState: lb.StateDown}
	pool.Update([]lb.Server{{Name: "app1", Addr: strings.TrimPrefix(srv.URL, "http://")}})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	for pool.Snapshot().Len() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	fmt.Println(pool.Status()[0].State)
	// Output:
	// web/app1: down -> up
	// up
}
