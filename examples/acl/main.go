// Command acl runs an HTTP frontend guarded by access rules and routing by
// Host, in front of two demo backends it starts itself:
//
//	go run ./examples/acl
//	curl -i http://127.0.0.1:8080/docs?x=1          # 308 to https://127.0.0.1:8443/docs?x=1
//	curl -k -H 'Host: app.example' https://127.0.0.1:8443/   # backend-1
//	curl -k -H 'Host: api.example' https://127.0.0.1:8443/   # backend-2
//	curl -k https://127.0.0.1:8443/admin/            # 403
//
// The rules, in order:
//
//  1. "office": clients outside the -office networks are denied (their
//     connections are closed at accept, before any TLS work);
//  2. "no-admin": paths under /admin are denied with 403 (HTTPS);
//  3. "to-https": every plain-HTTP request is redirected to HTTPS (308).
//
// Routes (HTTPS): Host app.example and its subdomains go to the first
// backend, api.example to the second; anything else to the first.
//
// Flags: -listen ADDR (plain HTTP, redirects), -listen-tls ADDR (HTTPS),
// -backends APP,API (two addresses; empty starts demo backends), -office
// CIDR,... (default: loopback), -cert and -key (PEM files; empty generates
// a self-signed certificate at startup), -v (log denials and redirects).
// SIGINT or SIGTERM drains requests for up to 10 seconds.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
)

// config is the parsed command line.
type config struct {
	listen, listenTLS, backends, office, certFile, keyFile string
	grace                                                  time.Duration
	verbose                                                bool
}

func main() {
	cfg := config{grace: 10 * time.Second}
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "plain HTTP address (redirects to HTTPS)")
	flag.StringVar(&cfg.listenTLS, "listen-tls", "127.0.0.1:8443", "HTTPS address")
	flag.StringVar(&cfg.backends, "backends", "", "APP,API: the servers of app.example and api.example; empty starts two demo backends")
	flag.StringVar(&cfg.office, "office", "127.0.0.0/8,::1/128", "comma-separated client networks allowed in")
	flag.StringVar(&cfg.certFile, "cert", "", "certificate PEM file; empty generates a self-signed one")
	flag.StringVar(&cfg.keyFile, "key", "", "private key PEM file")
	flag.BoolVar(&cfg.verbose, "v", false, "log denials and redirects")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// parseOffice parses the -office networks (CIDR, or a bare address for
// itself alone), which must not be empty.
func parseOffice(list string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("acl example: -office %q: %w", s, err)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, errors.New("acl example: empty -office")
	}
	return ps, nil
}

// run serves both frontends until ctx is done, reporting to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	office, err := parseOffice(cfg.office)
	if err != nil {
		return err
	}
	if cfg.backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.HTTPBackends(bctx, 2)
		if err != nil {
			return err
		}
		cfg.backends = strings.Join(addrs, ",")
		fmt.Fprintf(out, "started demo backends on %s\n", cfg.backends)
	}
	appAddr, apiAddr, ok := strings.Cut(cfg.backends, ",")
	if !ok || strings.Contains(apiAddr, ",") {
		return fmt.Errorf("acl example: -backends wants two addresses (app, api), got %q", cfg.backends)
	}
	app, api := &lb.Pool{Name: "app", Logger: logger}, &lb.Pool{Name: "api", Logger: logger}
	if err := app.Update([]lb.Server{{Name: "app", Addr: strings.TrimSpace(appAddr)}}); err != nil {
		return err
	}
	if err := api.Update([]lb.Server{{Name: "api", Addr: strings.TrimSpace(apiAddr)}}); err != nil {
		return err
	}
	router, err := acl.NewRouter(app,
		acl.Route{Host: []string{"app.example", "*.app.example"}, Pool: app},
		acl.Route{Host: []string{"api.example"}, Pool: api},
	)
	if err != nil {
		return err
	}

	cert, err := loadCert(cfg.certFile, cfg.keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	tlsLn, err := net.Listen("tcp", cfg.listenTLS)
	if err != nil {
		ln.Close()
		return err
	}

	officeRule := acl.Rule{Name: "office", IPs: office, Invert: true, Action: acl.Deny}
	redirect := acl.Redirect{Scheme: "https", Code: http.StatusPermanentRedirect}
	if _, port, _ := net.SplitHostPort(tlsLn.Addr().String()); port != "443" {
		redirect = acl.Redirect{Location: "https://{{host}}:" + port + "{{path}}{{query}}", Code: http.StatusPermanentRedirect}
	}
	plainRules, err := acl.Compile(officeRule, acl.Rule{Name: "to-https", Action: acl.RedirectTo, Redirect: redirect})
	if err != nil {
		ln.Close()
		tlsLn.Close()
		return err
	}
	tlsRules, err := acl.Compile(officeRule, acl.Rule{Name: "no-admin", PathPrefix: []string{"/admin"}, Action: acl.Deny})
	if err != nil {
		ln.Close()
		tlsLn.Close()
		return err
	}
	plainRules.Logger, tlsRules.Logger = logger, logger

	proxy := &lb.ReverseProxy{Pool: app, Route: router.Route, Logger: logger}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	plain := &http.Server{
		Handler:           acl.FilterHTTP(plainRules, http.NotFoundHandler()), // every allowed request is redirected
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errLog,
	}
	secure := &http.Server{
		Handler:           acl.FilterHTTP(tlsRules, proxy),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          errLog,
	}
	fmt.Fprintf(out, "acl: http on %s, https on %s\n", ln.Addr(), tlsLn.Addr())

	// If either frontend fails, the other one stops too.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- lb.Serve(sctx, plain, acl.Listener(plainRules, ln), cfg.grace) }()
	go func() {
		errc <- lb.ServeTLS(sctx, secure, acl.Listener(tlsRules, tlsLn), cfg.grace, proxy)
	}()
	first := <-errc
	cancel()
	return errors.Join(first, <-errc)
}

// loadCert loads the certificate, or issues one for the example's names
// from a throwaway CA when no file is given.
func loadCert(certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	ca, err := demo.NewCA()
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.Issue("app.example", "*.app.example", "api.example", "localhost", "127.0.0.1", "::1")
}
