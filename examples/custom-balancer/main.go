// Command custom-balancer is a reverse proxy balanced by an algorithm
// written outside lbkit: Fastest (fastest.go), which sends each request to
// the server that has answered fastest lately, learning response times
// through lb.Observer.
//
// Usage:
//
//	custom-balancer [-listen 127.0.0.1:8080] [-backends ADDR,ADDR,...]
//
// Without -backends it starts three demo backends on loopback, a, b and c,
// each answering its own name; c answers 50 ms late, so after one request
// it gets no more traffic unless a and b are busy:
//
//	$ custom-balancer &
//	$ for i in 1 2 3 4 5 6; do curl -s localhost:8080; done
//
// It stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	backends := flag.String("backends", "", "comma-separated server addresses (empty: start demo backends)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := setup(*listen, *backends, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if err := a.serve(ctx); err != nil {
		log.Fatal(err)
	}
}

// app is the running proxy and, without -backends, its demo backends.
type app struct {
	ln    net.Listener
	srv   *http.Server
	proxy *lb.ReverseProxy
	demo  []*http.Server
}

// setup starts the demo backends if backends is empty and prepares the
// proxy on listen; serve runs it.
func setup(listen, backends string, out io.Writer) (*app, error) {
	a := &app{}
	var servers []lb.Server
	if backends == "" {
		for _, name := range []string{"a", "b", "c"} {
			addr, err := a.startDemo(name)
			if err != nil {
				a.close()
				return nil, err
			}
			servers = append(servers, lb.Server{Name: name, Addr: addr})
			fmt.Fprintf(out, "started demo backend %s on %s\n", name, addr)
		}
	} else {
		for _, addr := range strings.Split(backends, ",") {
			servers = append(servers, lb.Server{Addr: strings.TrimSpace(addr)})
		}
	}

	pool := &lb.Pool{Name: "custom", Balancer: &Fastest{}}
	if err := pool.Update(servers); err != nil {
		a.close()
		return nil, err
	}
	a.proxy = &lb.ReverseProxy{Pool: pool}
	a.srv = &http.Server{Handler: a.proxy, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		a.close()
		return nil, err
	}
	a.ln = ln
	fmt.Fprintf(out, "serving on http://%s\n", ln.Addr())
	return a, nil
}

// serve runs the proxy until ctx is done, then shuts down gracefully.
func (a *app) serve(ctx context.Context) error {
	defer a.close()
	return lb.Serve(ctx, a.srv, a.ln, 5*time.Second, a.proxy)
}

// startDemo starts a backend answering its name; "c" answers 50 ms late.
func (a *app) startDemo(name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name == "c" {
				time.Sleep(50 * time.Millisecond)
			}
			fmt.Fprintln(w, name)
		}),
	}
	a.demo = append(a.demo, srv)
	go srv.Serve(ln) // ends when close closes srv
	return ln.Addr().String(), nil
}

func (a *app) close() {
	for _, srv := range a.demo {
		srv.Close()
	}
}
