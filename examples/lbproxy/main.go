// Command lbproxy is the command-line load balancer: one frontend, one pool
// of servers, every mode lbkit supports.
//
//	lbproxy -mode http -listen 127.0.0.1:8080 -backends 127.0.0.1:8001,127.0.0.1:8002
//	lbproxy -mode tcp  -listen 127.0.0.1:9000 -backends 127.0.0.1:5432,127.0.0.1:5433
//
// Modes:
//
//	http  HTTP/1.1 reverse proxy (L7), X-Forwarded-* rebuilt
//	tcp   TCP proxy (L4), bytes copied both ways (on an epoll event loop on Linux)
//
// With an empty -backends it starts demo backends on loopback and says so.
// It stays in the foreground, logs nothing per request, and on SIGINT or
// SIGTERM stops accepting and drains open work for -grace.
//
// Each optional capability (health checks, TLS, PROXY protocol, stickiness,
// ACLs) lives in a file of its own as a feature: its flags, and how it
// changes the stack that run assembles.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/demo"
	"github.com/lbkit/lbkit/lb"
)

// config is the parsed command line.
type config struct {
	mode, listen, backends, algorithm string
	certFile, keyFile                 string
	grace, connectTimeout, timeout    time.Duration
	retries, maxConns                 int
	verbose                           bool

	features []feature
}

// feature is an optional capability with flags of its own.
type feature interface {
	// register defines the feature's flags.
	register(fs *flag.FlagSet)
	// apply changes the stack before it serves.
	apply(s *stack) error
}

// ranked is implemented by features that must apply before or after the
// others: a lower rank applies first (the default is 0). Features that
// change what the client's address is (PROXY protocol reception) apply
// before those that read it (ACLs); features apply in registration order
// otherwise.
type ranked interface{ rank() int }

func rankOf(f feature) int {
	if r, ok := f.(ranked); ok {
		return r.rank()
	}
	return 0
}

// demoStarter is implemented by features whose modes need demo backends of
// their own (TLS servers, say): startDemo starts them for mode, until ctx
// is done, and reports whether it did.
type demoStarter interface {
	startDemo(ctx context.Context, mode string) (backends string, started bool, err error)
}

// stack is what run assembles: one listener, one pool, and the chain in
// front of it. Features change it in apply.
type stack struct {
	cfg    *config
	logger *slog.Logger
	kind   string // "http" or "tcp": the kind of frontend the mode serves
	ln     net.Listener
	pool   *lb.Pool

	// L4 (kind tcp): the chain the TCPFrontend serves; starts as pool.
	backend lb.Backend
	// L7 (kind http): the proxy, the handler chain in front of it (starts
	// as proxy), and the server.
	proxy   *lb.ReverseProxy
	handler http.Handler
	server  *http.Server
	// serve, when set by a feature, replaces how the http server serves
	// the listener (ServeTLS, say).
	serve func(ln net.Listener) error
	// also are extra things to drain on shutdown.
	also []lb.Shutdowner
}

// modes maps each -mode to the kind of frontend it serves. Features add
// theirs in init.
var modes = map[string]string{"http": "http", "tcp": "tcp"}

// newFeatures lists the features, in the order they apply. Features add
// themselves in init.
var newFeatures []func() feature

func main() {
	fs := flag.CommandLine
	cfg := defaultConfig()
	fs.StringVar(&cfg.mode, "mode", "http", "frontend mode: "+strings.Join(modeNames(), ", "))
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&cfg.backends, "backends", "", "comma-separated server addresses; empty starts demo backends")
	fs.StringVar(&cfg.algorithm, "algorithm", "roundrobin", "balancing algorithm: "+strings.Join(balancer.Names(), ", "))
	fs.StringVar(&cfg.certFile, "cert", "", "certificate PEM file, for the TLS modes")
	fs.StringVar(&cfg.keyFile, "key", "", "private key PEM file, for the TLS modes")
	fs.DurationVar(&cfg.grace, "grace", 10*time.Second, "how long open work may finish after SIGTERM")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", lb.DefaultConnectTimeout, "timeout to connect to a server")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "http: server response timeout (default 5m); tcp: tunnel inactivity timeout (default 15m)")
	fs.IntVar(&cfg.retries, "retries", lb.DefaultRetries, "connection attempts retried on another server (0: none)")
	fs.IntVar(&cfg.maxConns, "max-conns", 0, "per-server limit of connections or requests in flight (0: none); beyond it work queues")
	fs.BoolVar(&cfg.verbose, "v", false, "log per-connection events")
	for _, f := range cfg.features {
		f.register(fs)
	}
	flag.Parse()

	ctx, stop := demo.SignalContext()
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// defaultConfig returns a config with the features and defaults in place,
// as main starts from.
func defaultConfig() *config {
	cfg := &config{mode: "http", algorithm: "roundrobin", grace: 10 * time.Second, retries: lb.DefaultRetries}
	for _, nf := range newFeatures {
		cfg.features = append(cfg.features, nf())
	}
	sort.SliceStable(cfg.features, func(i, j int) bool { return rankOf(cfg.features[i]) < rankOf(cfg.features[j]) })
	return cfg
}

func modeNames() []string {
	var names []string
	for m := range modes {
		names = append(names, m)
	}
	sort.Strings(names)
	return names
}

// run serves until ctx is done, reporting to out.
func run(ctx context.Context, cfg *config, out io.Writer) error {
	kind, ok := modes[cfg.mode]
	if !ok {
		return fmt.Errorf("lbproxy: unknown -mode %q (want one of %s)", cfg.mode, strings.Join(modeNames(), ", "))
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	s := &stack{cfg: cfg, kind: kind, logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}

	if cfg.backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var err error
		started := false
		for _, f := range cfg.features {
			if d, ok := f.(demoStarter); ok {
				if cfg.backends, started, err = d.startDemo(bctx, cfg.mode); started || err != nil {
					break
				}
			}
		}
		switch {
		case started || err != nil:
		case kind == "tcp":
			cfg.backends, err = demo.TCPBackends(bctx, 2)
		default:
			cfg.backends, err = demo.HTTPBackends(bctx, 2)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "started demo backends on %s\n", cfg.backends)
	}
	servers, err := demo.Servers(cfg.backends)
	if err != nil {
		return err
	}
	for i := range servers {
		servers[i].MaxConns = cfg.maxConns
	}
	algo, err := balancer.ByName(cfg.algorithm)
	if err != nil {
		return err
	}
	retries := cfg.retries
	if retries == 0 {
		retries = -1 // the Pool's "no retry"
	}
	s.pool = &lb.Pool{
		Name:           "backend",
		Balancer:       algo,
		ConnectTimeout: cfg.connectTimeout,
		Retries:        retries,
		Logger:         s.logger,
	}
	if kind == "tcp" {
		s.pool.TunnelTimeout = cfg.timeout
		s.backend = s.pool
	} else {
		s.proxy = &lb.ReverseProxy{Pool: s.pool, ServerTimeout: cfg.timeout, Logger: s.logger}
		s.handler = s.proxy
		s.server = &http.Server{
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		}
		s.also = append(s.also, s.proxy)
	}
	if err := s.pool.Update(servers); err != nil {
		return err
	}
	if s.ln, err = net.Listen("tcp", cfg.listen); err != nil {
		return err
	}
	for _, f := range cfg.features {
		if err := f.apply(s); err != nil {
			s.ln.Close()
			return err
		}
	}

	go s.pool.Run(ctx)
	fmt.Fprintf(out, "lbproxy: %s on %s\n", cfg.mode, s.ln.Addr())
	if kind == "tcp" {
		return lb.Serve(ctx, &lb.TCPFrontend{Name: "frontend", Backend: s.backend, Logger: s.logger}, s.ln, cfg.grace, s.also...)
	}
	s.server.Handler = s.handler
	var fe lb.Frontend = s.server
	if s.serve != nil {
		fe = serveFunc{s.server, s.serve}
	}
	return lb.Serve(ctx, fe, s.ln, cfg.grace, s.also...)
}

// serveFunc is an http.Server whose Serve is replaced.
type serveFunc struct {
	*http.Server
	serve func(ln net.Listener) error
}

func (f serveFunc) Serve(ln net.Listener) error { return f.serve(ln) }
