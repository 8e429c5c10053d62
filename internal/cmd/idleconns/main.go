// Command idleconns measures what a proxy's idle connections cost. It is
// the client and the peers of scripts/idlemem.sh, loopback only:
//
//	idleconns backend -http ADDR -echo ADDR   # HTTP server ("ok", keep-alive) and TCP echo server
//	idleconns goproxy -listen ADDR -backend URL  # plain net/http server + httputil.ReverseProxy, the baseline
//	idleconns hold -mode http|tcp -addr ADDR -n N  # opens N connections, uses each once, holds them
//
// hold opens N connections (default 10,000) to ADDR, spread over loopback
// source addresses (-source, default 127.0.0.1, then the next ones:
// -per-source connections each, so that ephemeral ports never run short), with -workers dialing at once.
// In http mode it sends one keep-alive GET on each and reads the response;
// in tcp mode it sends a line and reads it back (through an echo server).
// It then prints "held N" and keeps every connection open until SIGINT or
// SIGTERM, or -hold has passed; then it closes them and exits. Every phase
// is bounded: dialing and the first exchange by -timeout, holding by -hold.
// It raises RLIMIT_NOFILE as far as N needs (as root, the hard limit too).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: idleconns backend|goproxy|hold [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(ctx, os.Args[2:])
	case "goproxy":
		err = goproxy(ctx, os.Args[2:])
	case "hold":
		err = hold(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

// backend serves HTTP ("ok" to every request) and TCP echo until ctx ends.
func backend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:18080", "HTTP server address")
	echoAddr := fs.String("echo", "127.0.0.1:18081", "TCP echo server address")
	fs.Parse(args)
	raiseNoFile(1 << 17)
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	el, err := net.Listen("tcp", *echoAddr)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Minute,
	}
	go srv.Serve(hl)
	go echoServe(el)
	fmt.Printf("backend: http on %s, echo on %s\n", hl.Addr(), el.Addr())
	<-ctx.Done()
	el.Close()
	return srv.Close()
}

func echoServe(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "idleconns: echo:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			// A plain copy: io.Copy between TCP connections would
			// splice, holding a kernel pipe (2 descriptors) per
			// connection.
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// goproxy is the baseline: what net/http's server and httputil's proxy
// cost per connection, without lbkit.
func goproxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("goproxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18090", "address to serve on")
	backendURL := fs.String("backend", "http://127.0.0.1:18080", "server URL")
	fs.Parse(args)
	raiseNoFile(1 << 17)
	u, err := url.Parse(*backendURL)
	if err != nil {
		return fmt.Errorf("goproxy: %w", err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("goproxy: %w", err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Minute}
	go srv.Serve(ln)
	fmt.Printf("goproxy: on %s\n", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}

func hold(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	mode := fs.String("mode", "http", "http (one keep-alive GET per connection) or tcp (one echoed line)")
	addr := fs.String("addr", "127.0.0.1:8080", "address of the proxy")
	n := fs.Int("n", 10000, "connections")
	perSource := fs.Int("per-source", 5000, "connections per loopback source address (-source, then the next ones)")
	source := fs.String("source", "127.0.0.1", "first loopback source address")
	workers := fs.Int("workers", 32, "connections opened at once")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on opening and using all connections")
	holdFor := fs.Duration("hold", 10*time.Minute, "longest time the connections are held")
	fs.Parse(args)
	if *mode != "http" && *mode != "tcp" {
		return fmt.Errorf("hold: -mode %q: want http or tcp", *mode)
	}
	if *n < 1 || *perSource < 1 || *workers < 1 || *n/(*perSource) > 250 {
		return errors.New("hold: -n, -per-source and -workers must be positive, and -n/-per-source at most 250")
	}
	first, err := netip.ParseAddr(*source)
	if err != nil || !first.Is4() || !first.IsLoopback() || int(first.As4()[3]) + *n / *perSource > 255 {
		return fmt.Errorf("hold: -source %q: want an IPv4 loopback address with room for -n/-per-source more", *source)
	}
	raiseNoFile(uint64(*n) + 1000)

	openCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conns := make([]net.Conn, *n)
	var next, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(*workers, *n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || openCtx.Err() != nil {
					return
				}
				c, err := openOne(openCtx, *mode, *addr, first, i / *perSource)
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if f := failed.Load(); f > 0 || openCtx.Err() != nil {
		return fmt.Errorf("hold: %d of %d connections failed (%v); first error: %w", f, *n, openCtx.Err(), firstErr)
	}
	fmt.Printf("held %d\n", *n)
	select {
	case <-ctx.Done():
	case <-time.After(*holdFor):
	}
	return nil
}

// openOne dials addr from the src-th address after first and makes one
// exchange.
func openOne(ctx context.Context, mode, addr string, first netip.Addr, src int) (net.Conn, error) {
	a := first.As4()
	a[3] += byte(src)
	local := netip.AddrFrom4(a)
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if err := exchange(c, mode); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func exchange(c net.Conn, mode string) error {
	if mode == "tcp" {
		const line = "ping\n"
		if _, err := io.WriteString(c, line); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		buf := make([]byte, len(line))
		if _, err := io.ReadFull(c, buf); err != nil {
			return fmt.Errorf("read echo: %w", err)
		}
		if string(buf) != line {
			return fmt.Errorf("echo: got %q", buf)
		}
		return nil
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: idleconns\r\n\r\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return fmt.Errorf("response: %s (close %v)", resp.Status, resp.Close)
	}
	if br.Buffered() > 0 {
		return errors.New("response: bytes after the body")
	}
	return nil
}

// raiseNoFile raises RLIMIT_NOFILE to at least want, if it can.
func raiseNoFile(want uint64) {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil || r.Cur >= want {
		return
	}
	if r.Max < want {
		r.Max = want // succeeds as root only
	}
	r.Cur = want
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}
