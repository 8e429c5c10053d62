// Command lbproxy is the command-line load balancer: one frontend, one pool
// of servers, every mode lbkit supports.
//
//	lbproxy -mode http -listen 127.0.0.1:8080 -backends 127.0.0.1:8001,127.0.0.1:8002
//	lbproxy -mode tcp  -listen 127.0.0.1:9000 -backends 127.0.0.1:5432,127.0.0.1:5433
//
// Modes:
//
//	http  HTTP/1.1 reverse proxy (L7), X-Forwarded-* rebuilt
//	tcp   TCP proxy (L4), bytes copied both ways (spliced on Linux)
//
// With an empty -backends it starts demo backends on loopback and says so.
// It stays in the foreground, logs nothing per request, and on SIGINT or
// SIGTERM stops accepting and drains open work for -grace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
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
}

func main() {
	var cfg config
	flag.StringVar(&cfg.mode, "mode", "http", "frontend mode: http or tcp")
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to serve on")
	flag.StringVar(&cfg.backends, "backends", "", "comma-separated server addresses; empty starts demo backends")
	flag.StringVar(&cfg.algorithm, "algorithm", "roundrobin", "balancing algorithm: "+strings.Join(balancer.Names(), ", "))
	flag.StringVar(&cfg.certFile, "cert", "", "certificate PEM file, for the TLS modes")
	flag.StringVar(&cfg.keyFile, "key", "", "private key PEM file, for the TLS modes")
	flag.DurationVar(&cfg.grace, "grace", 10*time.Second, "how long open work may finish after SIGTERM")
	flag.DurationVar(&cfg.connectTimeout, "connect-timeout", lb.DefaultConnectTimeout, "timeout to connect to a server")
	flag.DurationVar(&cfg.timeout, "timeout", 0, "http: server response timeout (default 5m); tcp: tunnel inactivity timeout (default 15m)")
	flag.IntVar(&cfg.retries, "retries", lb.DefaultRetries, "connection attempts retried on another server (0: none)")
	flag.IntVar(&cfg.maxConns, "max-conns", 0, "per-server limit of connections or requests in flight (0: none); beyond it work queues")
	flag.BoolVar(&cfg.verbose, "v", false, "log per-connection events")
	flag.Parse()

	ctx, stop := demo.SignalContext()
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done, reporting to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if cfg.backends == "" {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var err error
		switch cfg.mode {
		case "tcp":
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
	pool := &lb.Pool{
		Name:           "backend",
		Balancer:       algo,
		ConnectTimeout: cfg.connectTimeout,
		Retries:        retries,
		Logger:         logger,
	}
	if cfg.mode == "tcp" {
		pool.TunnelTimeout = cfg.timeout
	}
	if err := pool.Update(servers); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	switch cfg.mode {
	case "tcp":
		fmt.Fprintf(out, "lbproxy: tcp on %s\n", ln.Addr())
		return lb.Serve(ctx, &lb.ConnServer{Name: "frontend", Backend: pool, Logger: logger}, ln, cfg.grace)
	case "http":
		proxy := &lb.ReverseProxy{Pool: pool, ServerTimeout: cfg.timeout, Logger: logger}
		srv := &http.Server{
			Handler:           proxy,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		}
		fmt.Fprintf(out, "lbproxy: http on %s\n", ln.Addr())
		return lb.Serve(ctx, srv, ln, cfg.grace, proxy)
	default:
		ln.Close()
		return errors.New("lbproxy: -mode must be http or tcp")
	}
}
