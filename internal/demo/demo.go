// Package demo holds what the example programs share: demo backends on
// loopback, the -backends flag parsing, and signal handling.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
)

// Servers turns a comma-separated address list into Pool servers named
// after their position (s1, s2, ...).
func Servers(list string) ([]lb.Server, error) {
	var out []lb.Server
	for i, addr := range strings.Split(list, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("backend %q: %w", addr, err)
		}
		out = append(out, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr})
	}
	if len(out) == 0 {
		return nil, errors.New("no backend address")
	}
	return out, nil
}

// Pool builds a Pool named name over the comma-separated addresses, balanced
// by the algorithm of that name (balancer.ByName).
func Pool(name, addrs, algorithm string) (*lb.Pool, error) {
	servers, err := Servers(addrs)
	if err != nil {
		return nil, err
	}
	algo, err := balancer.ByName(algorithm)
	if err != nil {
		return nil, err
	}
	p := &lb.Pool{Name: name, Balancer: algo}
	if err := p.Update(servers); err != nil {
		return nil, err
	}
	return p, nil
}

// HTTPBackends starts n HTTP servers on 127.0.0.1 that answer every request
// with their name ("backend-1"...), in the body and in an X-Backend header.
// They stop when ctx is done. It returns their addresses, comma-separated.
func HTTPBackends(ctx context.Context, n int) (string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("backend-%d", i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", name)
				fmt.Fprintf(w, "hello from %s (you are %s, path %s)\n", name, r.Header.Get("X-Forwarded-For"), r.URL.Path)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go srv.Serve(ln)
		context.AfterFunc(ctx, func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return strings.Join(addrs, ","), nil
}

// TCPBackends starts n TCP servers on 127.0.0.1 that greet each connection
// with their name and then echo lines back. They stop when ctx is done.
func TCPBackends(ctx context.Context, n int) (string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("backend-%d", i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		go acceptLoop(ln, name)
		context.AfterFunc(ctx, func() { ln.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return strings.Join(addrs, ","), nil
}

func acceptLoop(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go greetAndEcho(c, name)
	}
}

func greetAndEcho(c net.Conn, name string) {
	defer c.Close()
	fmt.Fprintf(c, "hello from %s\n", name)
	r := bufio.NewReader(io.LimitReader(c, 1<<20))
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadString('\n')
		if line != "" {
			fmt.Fprintf(c, "%s: %s", name, line)
		}
		if err != nil {
			return
		}
	}
}

// SignalContext returns a context cancelled by SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
