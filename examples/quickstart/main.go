// Command quickstart runs an HTTP load balancer on 127.0.0.1:8080 in front
// of three demo backends it starts itself; each response says which backend
// answered.
//
//	go run ./examples/quickstart
//	curl http://127.0.0.1:8080/
//
// Flags: -listen ADDR, -backends ADDR,ADDR,... (your own servers instead of
// the demo ones), -algorithm NAME (see balancer.ByName). SIGINT or SIGTERM
// drains in-flight requests for up to 10 seconds.
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

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	backends := flag.String("backends", "", "comma-separated backend addresses; empty starts three demo backends")
	algorithm := flag.String("algorithm", "roundrobin", "balancing algorithm: "+fmt.Sprint(balancer.Names()))
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *backends, *algorithm, func(addr string) {
		fmt.Printf("load balancer on http://%s/\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done; ready is told the address it serves on.
func run(ctx context.Context, listen, backends, algorithm string, ready func(addr string)) error {
	if backends == "" {
		// The demo backends outlive ctx so that draining requests reach them.
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.HTTPBackends(bctx, 3)
		if err != nil {
			return err
		}
		backends = strings.Join(addrs, ",")
		fmt.Printf("started demo backends on %s\n", backends)
	}
	servers, err := parseServers(backends)
	if err != nil {
		return err
	}
	algo, err := balancer.ByName(algorithm)
	if err != nil {
		return err
	}
	pool := &lb.Pool{Name: "web", Balancer: algo}
	if err := pool.Update(servers); err != nil {
		return err
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String())
	return lb.Serve(ctx, srv, ln, 10*time.Second, proxy)
}

// parseServers turns a comma-separated address list into Pool servers named
// after their position (s1, s2, ...).
func parseServers(list string) ([]lb.Server, error) {
	var servers []lb.Server
	for i, addr := range strings.Split(list, ",") {
		if addr = strings.TrimSpace(addr); addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("backend %q: %w", addr, err)
		}
		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr})
	}
	if len(servers) == 0 {
		return nil, errors.New("no backend address")
	}
	return servers, nil
}
