// Command sticky runs an HTTP load balancer with cookie stickiness on
// 127.0.0.1:8080 in front of three demo backends it starts itself: the
// first response sets a cookie, and a client that sends it back keeps its
// backend.
//
//	go run ./examples/sticky
//	curl -c jar -b jar http://127.0.0.1:8080/   # same backend every time
//	curl http://127.0.0.1:8080/                 # no cookie: the next one in turn
//
// The admin address takes backends out and back in, to watch sessions move
// (the response then carries X-Sticky-Moved: 1, and the move is logged):
//
//	curl -X POST 'http://127.0.0.1:8081/down?server=s1'
//	curl -X POST 'http://127.0.0.1:8081/up?server=s1'
//
// Flags: -listen ADDR, -admin ADDR (empty: none), -backends ADDR,ADDR,...
// (your own servers, named s1, s2, ...), -cookie NAME, -secret HEX (at least
// 16 bytes, hex-encoded; shared by instances that must honour each other's
// cookies; empty generates one at start, so cookies do not survive a
// restart). SIGINT or SIGTERM drains in-flight requests for up to 10
// seconds.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
	"github.com/lbkit/lbkit/sticky"
)

// config is the command line.
type config struct {
	listen, admin, backends, cookie, secret string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to serve on")
	flag.StringVar(&cfg.admin, "admin", "127.0.0.1:8081", "address of the admin endpoint (POST /down?server=NAME, /up?server=NAME); empty: none")
	flag.StringVar(&cfg.backends, "backends", "", "comma-separated backend addresses; empty starts three demo backends")
	flag.StringVar(&cfg.cookie, "cookie", "SRV", "name of the sticky cookie")
	flag.StringVar(&cfg.secret, "secret", "", "hex-encoded cookie key (at least 16 bytes); empty generates one")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, func(addr, admin string) {
		fmt.Printf("load balancer on http://%s/\n", addr)
		if admin != "" {
			fmt.Printf("admin on http://%s/\n", admin)
		}
	}); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx is done; ready is told the addresses it serves on.
func run(ctx context.Context, cfg config, ready func(addr, admin string)) error {
	ck := &sticky.Cookie{
		Cookie:      http.Cookie{Name: cfg.cookie, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		MovedHeader: "X-Sticky-Moved",
		OnMove: func(info lb.PickInfo, from, to string) {
			slog.Info("session moved", "client", info.Client.Addr(), "from", from, "to", to)
		},
	}
	if cfg.secret != "" {
		key, err := hex.DecodeString(cfg.secret)
		if err != nil {
			return fmt.Errorf("sticky: -secret: %w", err)
		}
		ck.Keys = []sticky.Key{{Secret: key}}
	}
	if err := ck.Validate(); err != nil {
		return err
	}

	backends := cfg.backends
	if backends == "" {
		// The demo backends outlive ctx so that draining requests reach them.
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		addrs, err := demo.HTTPBackends(bctx, 3)
		if err != nil {
			return err
		}
		backends = strings.Join(addrs, ",")
		fmt.Printf("started demo backends on %s\n", backends)
	}
	var servers []lb.Server
	for i, addr := range strings.Split(backends, ",") {
		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: strings.TrimSpace(addr)})
	}
	// The Affinity is set before the first request.
	pool := &lb.Pool{Name: "web", Affinity: ck}
	if err := pool.Update(servers); err != nil {
		return err
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}

	adminAddr := ""
	if cfg.admin != "" {
		aln, err := net.Listen("tcp", cfg.admin)
		if err != nil {
			ln.Close()
			return err
		}
		adminAddr = aln.Addr().String()
		asrv := &http.Server{Handler: adminHandler(pool), ReadHeaderTimeout: 10 * time.Second}
		go asrv.Serve(aln)
		defer asrv.Close()
	}
	ready(ln.Addr().String(), adminAddr)
	return lb.Serve(ctx, srv, ln, 10*time.Second, proxy)
}

// adminHandler sets servers down and up: POST /down?server=NAME and POST
// /up?server=NAME.
func adminHandler(pool *lb.Pool) http.Handler {
	mux := http.NewServeMux()
	set := func(st lb.State) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name := r.URL.Query().Get("server")
			if !pool.SetState(name, st, "set by admin") {
				http.Error(w, "no such server", http.StatusNotFound)
				return
			}
			fmt.Fprintf(w, "%s is %s\n", name, st)
		}
	}
	mux.HandleFunc("POST /down", set(lb.StateMaintenance))
	mux.HandleFunc("POST /up", set(lb.StateUp))
	return mux
}
