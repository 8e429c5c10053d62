// Command proxyprotocol shows lbkit on both sides of the PROXY protocol.
//
//	go run ./examples/proxyprotocol
//	curl http://127.0.0.1:8080/                              # direct client
//	curl --haproxy-protocol http://127.0.0.1:8081/           # as an upstream LB would
//
// It starts a demo backend that accepts PROXY headers from loopback and
// answers with the client address it learns from them, and a load
// balancer with two frontends in front of it, both sending PROXY v2 (with
// the SSL TLV) to the backend:
//
//   - -listen (127.0.0.1:8080) takes clients directly: the backend learns
//     the client's own address, not the balancer's.
//   - -listen-proxied (127.0.0.1:8081) sits behind another load balancer:
//     it accepts PROXY v1/v2 headers from -trusted networks (127.0.0.0/8)
//     and refuses other peers; the address a header carries is passed on,
//     so the backend learns the original client's.
//
// SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "frontend for direct clients")
	proxied := flag.String("listen-proxied", "127.0.0.1:8081", "frontend behind a load balancer that sends PROXY headers")
	trusted := flag.String("trusted", "127.0.0.0/8", "comma-separated networks allowed to send PROXY headers to -listen-proxied")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *proxied, *trusted, func(direct, behind string) {
		fmt.Printf("direct clients: curl http://%s/\nbehind a load balancer: curl --haproxy-protocol http://%s/\n", direct, behind)
	}); err != nil {
		log.Fatal(err)
	}
}

// loopback is what the demo backend trusts: the load balancer runs here.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func run(ctx context.Context, listen, proxied, trusted string, ready func(direct, behind string)) error {
	var nets []netip.Prefix
	for _, s := range strings.Split(trusted, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-trusted: %w", err)
		}
		nets = append(nets, p)
	}

	// The backend: it learns the client from the PROXY header lbkit sends.
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	backend := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend: the client is %s\n", r.RemoteAddr)
		}),
	}

	pool := &lb.Pool{Name: "backend", ProxyHeader: proxyproto.V2(proxyproto.V2Options{SSL: true})}
	if err := pool.Update([]lb.Server{{Name: "backend", Addr: bln.Addr().String()}}); err != nil {
		bln.Close()
		return err
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	newFrontend := func() *http.Server {
		// ConnContext and ConnState keep each client's server connections
		// (and so their PROXY header) its own.
		return &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second,
			ConnContext: proxy.ConnContext, ConnState: proxy.ConnState}
	}
	direct, err := net.Listen("tcp", listen)
	if err != nil {
		bln.Close()
		return err
	}
	behind, err := net.Listen("tcp", proxied)
	if err != nil {
		bln.Close()
		direct.Close()
		return err
	}
	ready(direct.Addr().String(), behind.Addr().String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() {
		errc <- lb.Serve(ctx, backend, &proxyproto.Listener{Listener: bln, Trusted: loopback}, time.Second)
	}()
	go func() { errc <- lb.Serve(ctx, newFrontend(), direct, 5*time.Second, proxy) }()
	go func() {
		errc <- lb.Serve(ctx, newFrontend(), &proxyproto.Listener{Listener: behind, Trusted: nets}, 5*time.Second, proxy)
	}()
	var first error
	for range 3 {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel() // one failed: stop the others
		}
	}
	return first
}
