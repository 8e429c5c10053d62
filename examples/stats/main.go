// Command stats embeds a load balancer in a program that serves its own
// operator endpoints: the pool's Prometheus metrics and the live status
// page, mounted in the program's own http.ServeMux next to whatever else it
// serves there.
//
//	go run ./examples/stats
//	curl http://127.0.0.1:8080/                # through the load balancer
//	curl http://127.0.0.1:9100/metrics         # Prometheus exposition
//	open http://127.0.0.1:9100/status          # status page (?format=json for JSON)
//
// Flags: -listen ADDR, -admin ADDR (keep it on loopback or a management
// network: it names every server), -backends ADDR,ADDR,... (your own
// servers instead of three demo ones). SIGINT or SIGTERM drains for up to
// 10 seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
	"github.com/lbkit/lbkit/lb/metrics"
	"github.com/lbkit/lbkit/lb/statuspage"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address of the load balancer")
	admin := flag.String("admin", "127.0.0.1:9100", "address of /metrics and /status")
	backends := flag.String("backends", "", "comma-separated backend addresses; empty starts three demo backends")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *admin, *backends, func(lbAddr, adminAddr string) {
		fmt.Printf("load balancer on http://%s/, metrics on http://%s/metrics, status on http://%s/status\n", lbAddr, adminAddr, adminAddr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done; ready is told the two addresses it serves on.
func run(ctx context.Context, listen, admin, backends string, ready func(lbAddr, adminAddr string)) error {
	if backends == "" {
		// The demo backends outlive ctx so that draining requests reach them.
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.HTTPBackends(bctx, 3)
		if err != nil {
			return err
		}
		backends = strings.Join(addrs, ",")
	}
	var servers []lb.Server
	for i, addr := range strings.Split(backends, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr})
		}
	}
	if len(servers) == 0 {
		return errors.New("no backend address")
	}
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update(servers); err != nil {
		return err
	}
	proxy := &lb.ReverseProxy{Name: "www", Pool: pool}

	// The operator endpoints, in the program's own mux: both read the
	// counters the pool and the proxy keep anyway, when they are asked.
	collector := &metrics.Collector{}
	collector.AddPool(pool.Name, pool)
	collector.AddFrontend(proxy.Name, proxy)
	page := &statuspage.Handler{Title: "stats example"}
	page.AddPool(pool.Name, pool)
	page.AddFrontend(proxy.Name, proxy)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(collector))
	mux.Handle("GET /status", page)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	aln, err := net.Listen("tcp", admin)
	if err != nil {
		ln.Close()
		return err
	}
	ready(ln.Addr().String(), aln.Addr().String())

	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	adminSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- lb.Serve(ctx, srv, ln, 10*time.Second, proxy) }()
	go func() { errc <- lb.Serve(ctx, adminSrv, aln, time.Second) }()
	return errors.Join(<-errc, <-errc)
}
