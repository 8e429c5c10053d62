// Command offload terminates HTTPS in front of plain HTTP backends (TLS
// offloading): HTTP/2 and HTTP/1.1 to clients, plain HTTP/1.1 with
// X-Forwarded-Proto: https, -For, -Host and -Port to the backends.
//
//	go run ./examples/offload
//	curl --cacert /tmp/lbkit-demo-ca-PID.pem https://localhost:8443/   # the CA file it prints
//
// Without -cert it presents a certificate for localhost and 127.0.0.1 from
// a CA generated at start (the CA file is printed). With -cert and -key
// (or one file holding both) it serves those and reloads them when the
// files change. With -acme-host it obtains certificates for those names
// over ACME (Let's Encrypt by default, -acme-directory for another
// service), answering TLS-ALPN-01 on -listen and HTTP-01 on -acme-http.
// With no -backends it starts two demo HTTP servers. SIGINT or SIGTERM
// stops accepting and lets requests finish for up to 30 seconds.
package main

import (
	"context"
	"crypto/x509"
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
	"github.com/lbkit/lbkit/tlsmode"
)

type options struct {
	listen, backends, certFile, keyFile, profile string
	reload                                       time.Duration
	acmeDirectory, acmeHosts, acmeEmail          string
	acmeCache, acmeHTTP, acmeCA                  string
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8443", "HTTPS address to serve on")
	flag.StringVar(&o.backends, "backends", "", "comma-separated HTTP backend addresses; empty starts two demo servers")
	flag.StringVar(&o.certFile, "cert", "", "certificate chain PEM file (may hold the key too); empty generates one")
	flag.StringVar(&o.keyFile, "key", "", "private key PEM file; empty when -cert holds it")
	flag.StringVar(&o.profile, "profile", "intermediate", "TLS profile: old, intermediate or modern")
	flag.DurationVar(&o.reload, "reload", 5*time.Second, "how often -cert and -key are checked for changes")
	flag.StringVar(&o.acmeHosts, "acme-host", "", "comma-separated names to obtain certificates for over ACME")
	flag.StringVar(&o.acmeDirectory, "acme-directory", tlsmode.LetsEncryptURL, "ACME directory URL")
	flag.StringVar(&o.acmeEmail, "acme-email", "", "ACME account contact address")
	flag.StringVar(&o.acmeCache, "acme-cache", "", "directory keeping the ACME account and certificates")
	flag.StringVar(&o.acmeHTTP, "acme-http", "", "address answering HTTP-01 challenges (port 80 as the CA sees it); empty: TLS-ALPN-01 only")
	flag.StringVar(&o.acmeCA, "acme-ca", "", "PEM file of a CA to trust for the ACME directory (test CAs such as Pebble)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, func(addr string, _ *x509.CertPool) {
		fmt.Printf("HTTPS offloading on %s\n", addr)
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done. ready gets the address and, with a
// generated certificate, the pool that verifies it.
func run(ctx context.Context, o options, ready func(addr string, roots *x509.CertPool)) error {
	profile, err := tlsmode.ParseProfile(o.profile)
	if err != nil {
		return err
	}
	if o.backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.HTTPBackends(bctx, 2)
		if err != nil {
			return err
		}
		o.backends = strings.Join(addrs, ",")
		fmt.Printf("started demo backends on %s\n", o.backends)
	}
	var servers []lb.Server
	for i, addr := range strings.Split(o.backends, ",") {
		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: strings.TrimSpace(addr)})
	}
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update(servers); err != nil {
		return err
	}

	// The certificates: the PEM files, reloaded when they change, or one
	// for localhost from a CA generated now, which clients must trust.
	certs := &tlsmode.Store{}
	var roots *x509.CertPool
	if o.certFile != "" {
		if err := certs.AddFiles(o.certFile, o.keyFile); err != nil {
			return err
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go certs.Watch(wctx, o.reload)
	} else {
		ca, err := demo.NewCA()
		if err != nil {
			return err
		}
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
	var also []lb.Shutdowner
	if o.acmeHosts != "" {
		stopHTTP, err := setupACME(o, certs)
		if err != nil {
			return err
		}
		if stopHTTP != nil {
			also = append(also, stopHTTP)
		}
	}

	proxy := &lb.ReverseProxy{Pool: pool}
	srv := &http.Server{
		Handler:           proxy,
		TLSConfig:         tlsmode.Config{Profile: profile, Certificates: certs}.HTTPConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ready(ln.Addr().String(), roots)
	// HTTPS with srv.TLSConfig, HTTP/2 through ALPN.
	return lb.ServeTLS(ctx, srv, ln, 30*time.Second, append(also, proxy)...)
}

// setupACME gives certs an ACME manager and starts the HTTP-01 server when
// asked; it returns that server, for run to shut down.
func setupACME(o options, certs *tlsmode.Store) (*http.Server, error) {
	cfg := tlsmode.ACMEConfig{DirectoryURL: o.acmeDirectory, Hosts: strings.Split(o.acmeHosts, ","), Email: o.acmeEmail, CacheDir: o.acmeCache}
	if o.acmeCA != "" {
		pool, err := tlsmode.LoadCertPool(o.acmeCA)
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tlsmode.Upstream{RootCAs: pool}.ClientConfig()}}
	}
	acme, err := tlsmode.NewACME(cfg)
	if err != nil {
		return nil, err
	}
	certs.ACME = acme
	if o.acmeHTTP == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", o.acmeHTTP)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: acme.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	fmt.Printf("answering ACME HTTP-01 challenges on %s\n", ln.Addr())
	return hs, nil
}
