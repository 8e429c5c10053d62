// Command tcp balances TCP connections of any protocol (L4) over servers.
//
//	go run ./examples/tcp
//	nc 127.0.0.1:9000
//
// With no -backends it starts three demo servers that greet each connection
// with their name and echo lines. Flags: -listen ADDR, -backends
// ADDR,ADDR,..., -algorithm NAME. SIGINT or SIGTERM stops accepting and
// lets open connections finish for up to 30 seconds.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/demo"
	"github.com/lbkit/lbkit/lb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to serve on")
	backends := flag.String("backends", "", "comma-separated backend addresses; empty starts three demo servers")
	algorithm := flag.String("algorithm", "leastconn", "balancing algorithm: "+fmt.Sprint(balancer.Names()))
	flag.Parse()

	ctx, stop := demo.SignalContext()
	defer stop()
	if err := run(ctx, *listen, *backends, *algorithm, func(addr string) {
		fmt.Printf("TCP load balancer on %s\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen, backends, algorithm string, ready func(addr string)) error {
	if backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var err error
		if backends, err = demo.TCPBackends(bctx, 3); err != nil {
			return err
		}
		fmt.Printf("started demo servers on %s\n", backends)
	}
	pool, err := demo.Pool("tcp", backends, algorithm)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String())
	return lb.Serve(ctx, &lb.TCPFrontend{Name: "tcp", Backend: pool}, ln, 30*time.Second)
}
