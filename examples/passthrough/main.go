// Command passthrough routes TLS connections by the server name the client
// asks for (SNI), without decrypting them: the servers hold the
// certificates, and the client's TLS session ends at the server.
//
//	go run ./examples/passthrough
//	openssl s_client -connect 127.0.0.1:8443 -servername a.localhost
//
// With no -backends it starts two demo TLS servers, a.localhost and
// b.localhost, with certificates of a CA generated at start (its file is
// printed, for -CAfile), and routes each name to its server; other names
// and clients without SNI go to the first backend. Flags: -listen ADDR,
// -backends ADDR,... (the default route), -route NAME=ADDR,... (SNI routes;
// "*.example.com" patterns allowed). SIGINT or SIGTERM stops accepting and
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

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
	"github.com/lbkit/lbkit/tlsmode"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve on")
	backends := flag.String("backends", "", "comma-separated addresses of the default route; empty starts two demo TLS servers")
	routes := flag.String("route", "", "comma-separated SNI routes NAME=ADDR (NAME may be *.domain)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *backends, *routes, func(addr string, _ *demo.CA) {
		fmt.Printf("TLS passthrough on %s\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done. ready gets the address and, with demo
// servers, the CA that signed their certificates.
func run(ctx context.Context, listen, backends, routes string, ready func(addr string, ca *demo.CA)) error {
	var ca *demo.CA
	if backends == "" {
		var err error
		if ca, err = demo.NewCA(); err != nil {
			return err
		}
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.TLSBackends(bctx, ca, "a.localhost", "b.localhost")
		if err != nil {
			return err
		}
		a, b := addrs[0], addrs[1]
		backends = a
		routes = "a.localhost=" + a + ",b.localhost=" + b
		caFile, err := ca.WriteCAFile(os.TempDir())
		if err != nil {
			return err
		}
		fmt.Printf("started demo TLS servers a.localhost on %s and b.localhost on %s (CA in %s)\n", a, b, caFile)
	}
	def, err := newPool("default", backends)
	if err != nil {
		return err
	}
	mux := &lb.Mux{Default: def}
	for _, r := range strings.Split(routes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		name, addr, ok := strings.Cut(r, "=")
		if !ok {
			return fmt.Errorf("route %q: want NAME=ADDR", r)
		}
		p, err := newPool(name, addr)
		if err != nil {
			return err
		}
		if err := mux.Handle(name, p); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String(), ca)
	// The Pools splice the client's bytes after the peeked ClientHello.
	return lb.Serve(ctx, &lb.TCPFrontend{Name: "passthrough", Backend: tlsmode.Passthrough(mux)}, ln, 30*time.Second)
}

// newPool returns a Pool named name over the comma-separated addresses,
// its servers named after their position (s1, s2, ...).
func newPool(name, addrs string) (*lb.Pool, error) {
	var servers []lb.Server
	for i, addr := range strings.Split(addrs, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr})
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no backend address")
	}
	p := &lb.Pool{Name: name}
	if err := p.Update(servers); err != nil {
		return nil, err
	}
	return p, nil
}
