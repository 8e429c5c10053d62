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
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/demo"
	"github.com/lbkit/lbkit/lb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	backends := flag.String("backends", "", "comma-separated backend addresses; empty starts three demo backends")
	algorithm := flag.String("algorithm", "roundrobin", "balancing algorithm: "+fmt.Sprint(balancer.Names()))
	flag.Parse()

	ctx, stop := demo.SignalContext()
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
		var err error
		if backends, err = demo.HTTPBackends(bctx, 3); err != nil {
			return err
		}
		fmt.Printf("started demo backends on %s\n", backends)
	}
	pool, err := demo.Pool("web", backends, algorithm)
	if err != nil {
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
