// Command grpc load-balances gRPC: grpc-go clients speak HTTP/2 over TLS to
// an lb.ReverseProxy, which spreads their calls over demo grpc-go servers,
// also over HTTP/2 and TLS, and checks them with the gRPC health-checking
// protocol (health/grpchealth). Certificates come from a CA generated at
// start-up, whose certificate the program writes to a temporary file for
// outside clients.
//
//	go run ./examples/grpc
//	grpcurl -cacert CA.pem 127.0.0.1:8443 grpc.health.v1.Health/Check   # path printed at start
//
// With -demo, the program is its own client and exits: a few calls spread
// over both servers, then backend-2 reports NOT_SERVING for the demo
// service and the health checks take it out, then every server stops
// serving and a call gets the proxy's UNAVAILABLE status (not an HTTP 503
// page).
//
// The servers offer the demo service demo.Greeter (method Hello; its
// messages are google.protobuf.StringValue, so no generated code is
// needed), the standard health service and server reflection.
//
// Flags: -listen ADDR (default 127.0.0.1:8443), -interval (between
// checks, default 1s), -demo.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealthsrv "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/health/grpchealth"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
)

// service is the name of the demo service, which the health checks ask
// about.
const service = "demo.Greeter"

type config struct {
	listen   string
	interval time.Duration
	demo     bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8443", "address to serve gRPC (HTTP/2 over TLS) on")
	flag.DurationVar(&cfg.interval, "interval", time.Second, "time between health checks of an up server")
	flag.BoolVar(&cfg.demo, "demo", false, "make demo calls through the proxy, then exit")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, &syncWriter{w: os.Stdout}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done, or until the demo calls are over with
// cfg.demo, printing to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	ca, err := demo.NewCA()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lbkit-grpc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	caFile, err := ca.WriteCAFile(dir)
	if err != nil {
		return err
	}
	// The servers' and the proxy's certificates, for loopback.
	cert, err := ca.Issue("localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	toServers := &tls.Config{RootCAs: ca.Pool()} // the proxy and the health checks, towards the servers

	var backends []*backend
	var servers []lb.Server
	for _, name := range []string{"backend-1", "backend-2"} {
		b, err := startBackend(name, cert)
		if err != nil {
			return err
		}
		defer b.stop()
		backends = append(backends, b)
		servers = append(servers, lb.Server{Name: name, Addr: b.addr})
	}

	mon := &health.Monitor{
		Probe:             grpchealth.Probe{Service: service, TLS: toServers},
		Interval:          cfg.interval,
		TransientInterval: cfg.interval / 4,
		Fall:              2,
		Rise:              1,
		OnChange: func(e health.Event) {
			// One write a line, so that lines of other goroutines
			// (the demo's calls) never land inside it.
			line := fmt.Sprintf("%s: %s -> %s", e.Server, e.From, e.To)
			if e.Reason != "" {
				line += " (" + e.Reason + ")"
			}
			fmt.Fprintln(out, line)
		},
	}
	// No traffic before a check passes.
	pool := &lb.Pool{Name: "grpc", HealthChecker: mon, InitialState: lb.StateDown}
	if err := pool.Update(servers); err != nil {
		return err
	}
	// gRPC needs HTTP/2 on both sides: the http.Server offers it to clients
	// through ALPN, and ServerHTTP2 makes the proxy speak it to the servers.
	proxy := &lb.ReverseProxy{
		Pool:            pool,
		Scheme:          "https",
		ServerHTTP2:     true,
		TLSClientConfig: toServers,
	}
	srv := &http.Server{
		Handler:           proxy,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "gRPC load balancer on %s (CA certificate %s)\n", ln.Addr(), filepath.ToSlash(caFile))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); pool.Run(ctx) }()
	if cfg.demo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if err := calls(ctx, ln.Addr().String(), ca, pool, backends, out); err != nil {
				fmt.Fprintf(out, "demo: %v\n", err)
			}
		}()
	}
	return lb.ServeTLS(ctx, srv, ln, 5*time.Second, proxy)
}

// calls is the demo client: it calls through the proxy at addr while the
// servers' health changes.
func calls(ctx context.Context, addr string, ca *demo.CA, pool *lb.Pool, backends []*backend, out io.Writer) error {
	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	hello := func(n int) {
		for range n {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			reply := new(wrapperspb.StringValue)
			err := cc.Invoke(cctx, "/demo.Greeter/Hello", wrapperspb.String("demo"), reply)
			cancel()
			if err != nil {
				st := status.Convert(err)
				fmt.Fprintf(out, "Hello: %s: %s\n", st.Code(), st.Message())
				continue
			}
			fmt.Fprintf(out, "Hello: %s\n", reply.Value)
		}
	}
	if err := waitPickable(ctx, pool, 2); err != nil {
		return err
	}
	hello(4)

	fmt.Fprintln(out, "backend-2 stops serving", service)
	backends[1].health.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	if err := waitPickable(ctx, pool, 1); err != nil {
		return err
	}
	hello(2)

	fmt.Fprintln(out, "backend-1 stops serving", service)
	backends[0].health.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	if err := waitPickable(ctx, pool, 0); err != nil {
		return err
	}
	hello(1)
	return nil
}

// waitPickable waits until pool has n servers to pick from.
func waitPickable(ctx context.Context, pool *lb.Pool, n int) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for len(pool.Snapshot().Servers) != n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// backend is a demo grpc-go server on a loopback port.
type backend struct {
	name, addr string
	srv        *grpc.Server
	health     *grpchealthsrv.Server
	done       chan struct{}
}

func startBackend(name string, cert tls.Certificate) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
	b := &backend{
		name:   name,
		addr:   ln.Addr().String(),
		srv:    grpc.NewServer(grpc.Creds(creds)),
		health: grpchealthsrv.NewServer(),
		done:   make(chan struct{}),
	}
	b.srv.RegisterService(&greeterDesc, b)
	healthpb.RegisterHealthServer(b.srv, b.health)
	reflection.Register(b.srv)
	b.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Printf("%s: %v", name, err)
		}
	}()
	return b, nil
}

func (b *backend) stop() {
	b.srv.Stop()
	<-b.done
}

// greeterDesc describes demo.Greeter by hand: its one method takes and
// returns a google.protobuf.StringValue.
var greeterDesc = grpc.ServiceDesc{
	ServiceName: service,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Hello",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return wrapperspb.String(fmt.Sprintf("hello %s from %s", in.Value, srv.(*backend).name)), nil
		},
	}},
}

// syncWriter serialises writes from the Monitor and the demo client.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
