// Command bridge terminates the client's TLS and opens a new TLS session to
// the servers (TLS bridging), verifying their certificates: HTTPS in front,
// HTTPS (HTTP/1.1, or HTTP/2 with -h2 when the servers offer it) behind. With -l4 it bridges any
// TLS protocol at the connection level instead.
//
//	go run ./examples/bridge
//	curl --cacert /tmp/lbkit-demo-ca-PID.pem https://localhost:8443/   # the CA file it prints
//
// Without -cert it presents a certificate for localhost from a CA generated
// at start (the CA file is printed). Server certificates are verified
// against -ca (a PEM bundle; the system roots when empty) for -server-name
// (the server's address when empty); -insecure turns verification off. With
// no -backends it starts two demo HTTPS servers (TLS echo servers with
// -l4) whose certificates the generated CA signed, and trusts it. SIGINT or
// SIGTERM stops accepting and lets open work finish for up to 30 seconds.
package main

import (
	"context"
	"crypto/x509"
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
	"github.com/lbkit/lbkit/tlsmode"
)

type options struct {
	listen, backends, certFile, keyFile string
	caFile, serverName                  string
	insecure, l4, h2                    bool
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8443", "TLS address to serve on")
	flag.StringVar(&o.backends, "backends", "", "comma-separated TLS server addresses; empty starts two demo servers")
	flag.StringVar(&o.certFile, "cert", "", "frontend certificate PEM file (may hold the key too); empty generates one")
	flag.StringVar(&o.keyFile, "key", "", "frontend private key PEM file")
	flag.StringVar(&o.caFile, "ca", "", "PEM bundle verifying the servers' certificates; empty means the system roots")
	flag.StringVar(&o.serverName, "server-name", "", "name to send to and verify on the servers; empty means each server's address")
	flag.BoolVar(&o.insecure, "insecure", false, "do not verify the servers' certificates")
	flag.BoolVar(&o.l4, "l4", false, "bridge TLS connections of any protocol instead of HTTPS")
	flag.BoolVar(&o.h2, "h2", false, "speak HTTP/2 to servers that offer it (default HTTP/1.1)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, func(addr string, _ *x509.CertPool) {
		fmt.Printf("TLS bridging on %s\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done. ready gets the address and, with a
// generated certificate, the pool that verifies it.
func run(ctx context.Context, o options, ready func(addr string, roots *x509.CertPool)) error {
	ca, err := demo.NewCA()
	if err != nil {
		return err
	}
	up := tlsmode.Upstream{ServerName: o.serverName, InsecureSkipVerify: o.insecure, HTTP2: o.h2}
	if o.caFile != "" {
		if up.RootCAs, err = tlsmode.LoadCertPool(o.caFile); err != nil {
			return err
		}
	}
	if o.backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var addrs []string
		if o.l4 {
			addrs, err = demo.TLSBackends(bctx, ca, "tls-backend-1", "tls-backend-2")
		} else {
			addrs, err = demo.HTTPSBackends(bctx, ca, 2)
		}
		if err != nil {
			return err
		}
		o.backends = strings.Join(addrs, ",")
		up.RootCAs = ca.Pool()
		fmt.Printf("started demo TLS servers on %s\n", o.backends)
	}
	var servers []lb.Server
	for i, addr := range strings.Split(o.backends, ",") {
		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: strings.TrimSpace(addr)})
	}
	pool := &lb.Pool{Name: "servers"}
	if err := pool.Update(servers); err != nil {
		return err
	}

	// The frontend's certificates: the PEM files, reloaded when they
	// change, or one for localhost from the generated CA.
	certs := &tlsmode.Store{}
	var roots *x509.CertPool
	if o.certFile != "" {
		if err := certs.AddFiles(o.certFile, o.keyFile); err != nil {
			return err
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go certs.Watch(wctx, 5*time.Second)
	} else {
		cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
		if err != nil {
			return err
		}
		if err := certs.Add(cert); err != nil {
			return err
		}
		caFile, err := ca.WriteCAFile(os.TempDir())
		if err != nil {
			return err
		}
		fmt.Printf("generated a certificate for localhost (CA in %s)\n", caFile)
		roots = ca.Pool()
	}
	front := tlsmode.Config{Certificates: certs}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String(), roots)
	if o.l4 {
		up.Bridge(pool)
		cs := &lb.TCPFrontend{Name: "bridge", Backend: tlsmode.Offload(front.ServerConfig(), pool)}
		return lb.Serve(ctx, cs, ln, 30*time.Second)
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	up.BridgeHTTP(proxy)
	srv := &http.Server{Handler: proxy, TLSConfig: front.HTTPConfig(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	// HTTPS with srv.TLSConfig, HTTP/2 through ALPN.
	return lb.ServeTLS(ctx, srv, ln, 30*time.Second, proxy)
}
