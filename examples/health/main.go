// Command health shows health checks at work: an HTTP load balancer in front
// of two demo backends, checked on /healthz, while the program itself stops
// and restarts backend-2 on a timer. Every state change is printed as it
// happens, with its reason.
//
//	go run ./examples/health
//	curl http://127.0.0.1:8080/   # backend-1 and backend-2, then backend-1 alone
//
// Flags: -listen ADDR, -interval (between checks, default 1s), -cycle (how
// long backend-2 stays up, then down; default 5s), -cycles N (stop after N
// stop/restart cycles; 0 runs until SIGINT or SIGTERM).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
)

type config struct {
	listen          string
	interval, cycle time.Duration
	cycles          int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to serve on")
	flag.DurationVar(&cfg.interval, "interval", time.Second, "time between checks of an up server")
	flag.DurationVar(&cfg.cycle, "cycle", 5*time.Second, "how long backend-2 stays up, then down")
	flag.IntVar(&cfg.cycles, "cycles", 0, "stop/restart cycles before exiting (0: until a signal)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, &syncWriter{w: writerFunc(func(b []byte) (int, error) { return fmt.Print(string(b)) })}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done or the cycles are over, printing to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	b1, err := startBackend("backend-1", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer b1.stop()
	b2, err := startBackend("backend-2", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer b2.stop()

	mon := &health.Monitor{
		Probe:             health.HTTP{Path: "/healthz", Body: "ok"},
		Interval:          cfg.interval,
		TransientInterval: cfg.interval / 4,
		Timeout:           cfg.interval / 2,
		OnChange: func(e health.Event) {
			fmt.Fprintf(out, "%s %s: %s -> %s", e.Time.Format("15:04:05.000"), e.Server, e.From, e.To)
			if e.Reason != "" {
				fmt.Fprintf(out, " (%s)", e.Reason)
			}
			fmt.Fprintln(out)
		},
	}
	// No traffic before a check passes.
	pool := &lb.Pool{Name: "web", HealthChecker: mon, InitialState: lb.StateDown}
	if err := pool.Update([]lb.Server{{Name: "backend-1", Addr: b1.addr}, {Name: "backend-2", Addr: b2.addr}}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "load balancer on http://%s/ (backends %s, %s)\n", ln.Addr(), b1.addr, b2.addr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pool.Run(ctx) }()
	go func() { defer wg.Done(); cycle(ctx, cancel, cfg, b2, out) }()
	defer wg.Wait()

	proxy := &lb.ReverseProxy{Pool: pool}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	return lb.Serve(ctx, srv, ln, 5*time.Second, proxy)
}

// cycle stops and restarts b every cfg.cycle; after cfg.cycles cycles (if
// set) it waits one more cycle and ends the program.
func cycle(ctx context.Context, done context.CancelFunc, cfg config, b *backend, out io.Writer) {
	t := time.NewTicker(cfg.cycle)
	defer t.Stop()
	for n := 0; cfg.cycles == 0 || n < cfg.cycles; n++ {
		for _, step := range []string{"stopping", "restarting"} {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			fmt.Fprintf(out, "%s %s\n", step, b.name)
			if step == "stopping" {
				b.stop()
			} else if err := b.start(); err != nil {
				fmt.Fprintf(out, "restart failed: %v\n", err)
				done()
				return
			}
		}
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	done()
}

// backend is a demo HTTP server that can be stopped and restarted on the
// same address.
type backend struct {
	name, addr string
	mu         sync.Mutex
	srv        *http.Server
}

func startBackend(name, addr string) (*backend, error) {
	b := &backend{name: name, addr: addr}
	return b, b.start()
}

func (b *backend) start() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	b.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", b.name)
		fmt.Fprintf(w, "hello from %s\n", b.name)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("%s: %v", b.name, err)
		}
	}()
	return nil
}

func (b *backend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// syncWriter serialises writes from the Monitor and the cycle goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
