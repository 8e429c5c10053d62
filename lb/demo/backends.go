package demo

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPBackends starts n HTTP servers on 127.0.0.1, named backend-1 to
// backend-n, that answer every request with their name, in an X-Backend
// header and in the body, along with the request's X-Forwarded-For and
// path. They stop when ctx is done. It returns their addresses, in name
// order.
func HTTPBackends(ctx context.Context, n int) ([]string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("backend-%d", i)
		ln, err := listen(ctx)
		if err != nil {
			return nil, err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", name)
				fmt.Fprintf(w, "hello from %s (you are %s, path %s)\n", name, r.Header.Get("X-Forwarded-For"), r.URL.Path)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go srv.Serve(ln) // ends when ctx closes srv
		context.AfterFunc(ctx, func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// TCPBackends starts n TCP servers on 127.0.0.1, named backend-1 to
// backend-n, that greet each connection with "hello from NAME\n" and then
// echo every line back prefixed with "NAME: ". They stop accepting when ctx
// is done; open connections end when their client closes or after five
// idle minutes. It returns their addresses, in name order.
func TCPBackends(ctx context.Context, n int) ([]string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		ln, err := listen(ctx)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, serveGreeter(ctx, ln, fmt.Sprintf("backend-%d", i)))
	}
	return addrs, nil
}

// TLSBackends starts one TLS server on 127.0.0.1 per name, presenting a
// certificate of ca for that name and 127.0.0.1, that greets and echoes as
// the servers of [TCPBackends] do, under that name. They stop when ctx is
// done. It returns their addresses, in the order of names.
func TLSBackends(ctx context.Context, ca *CA, names ...string) ([]string, error) {
	var addrs []string
	for _, name := range names {
		cert, err := ca.Issue(name, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		ln, err := listen(ctx)
		if err != nil {
			return nil, err
		}
		tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		addrs = append(addrs, serveGreeter(ctx, tln, name))
	}
	return addrs, nil
}

// HTTPSBackends starts n HTTPS servers on 127.0.0.1, named tls-backend-1 to
// tls-backend-n, presenting certificates of ca for 127.0.0.1 and localhost
// and speaking HTTP/2 and HTTP/1.1. Each answers with its name (also in an
// X-Backend header), the protocol of the request and its X-Forwarded-For
// and X-Forwarded-Proto. They stop when ctx is done. It returns their
// addresses, in name order.
func HTTPSBackends(ctx context.Context, ca *CA, n int) ([]string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("tls-backend-%d", i)
		cert, err := ca.Issue("127.0.0.1", "localhost")
		if err != nil {
			return nil, err
		}
		ln, err := listen(ctx)
		if err != nil {
			return nil, err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", name)
				fmt.Fprintf(w, "hello from %s over %s with TLS (you are %s, %s)\n", name, r.Proto, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
			}),
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
			ReadHeaderTimeout: 5 * time.Second,
		}
		go srv.ServeTLS(ln, "", "") // ends when ctx closes srv
		context.AfterFunc(ctx, func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// listen opens a listener on a free loopback port.
func listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return ln, nil
}

// serveGreeter accepts on ln as name until ctx is done and returns ln's
// address.
func serveGreeter(ctx context.Context, ln net.Listener, name string) string {
	go acceptLoop(ln, name)
	context.AfterFunc(ctx, func() { ln.Close() })
	return ln.Addr().String()
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
