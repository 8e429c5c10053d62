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
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
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
	listen := flag.String("listen", "127.0.0.1:9000", "address to serve on")
	backends := flag.String("backends", "", "comma-separated backend addresses; empty starts three demo servers")
	algorithm := flag.String("algorithm", "leastconn", "balancing algorithm: "+fmt.Sprint(balancer.Names()))
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *backends, *algorithm, func(addr string) {
		fmt.Printf("TCP load balancer on %s\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done; ready is told the address it serves on.
func run(ctx context.Context, listen, backends, algorithm string, ready func(addr string)) error {
	if backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.TCPBackends(bctx, 3)
		if err != nil {
			return err
		}
		backends = strings.Join(addrs, ",")
		fmt.Printf("started demo servers on %s\n", backends)
	}
	servers, err := parseServers(backends)
	if err != nil {
		return err
	}
	algo, err := balancer.ByName(algorithm)
	if err != nil {
		return err
	}
	pool := &lb.Pool{Name: "tcp", Balancer: algo}
	if err := pool.Update(servers); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String())
	return lb.Serve(ctx, &lb.TCPFrontend{Name: "tcp", Backend: pool}, ln, 30*time.Second)
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
