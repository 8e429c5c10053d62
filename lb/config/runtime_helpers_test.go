package config_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// servers are test servers listening on the same port of several
// loopback addresses, as a backend's pool at its forward_port.
type servers struct {
	port int
	ips  []string
	lns  []net.Listener
}

// listenSame listens on the same port of each of ips.
func listenSame(t *testing.T, ips ...string) *servers {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		s := &servers{port: port, ips: ips, lns: []net.Listener{first}}
		ok := true
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			s.lns = append(s.lns, ln)
		}
		if ok {
			return s
		}
		for _, ln := range s.lns {
			ln.Close()
		}
	}
	t.Fatal("no common free port")
	return nil
}

// httpServers starts HTTP servers on ips that answer "NAME IP" (and 200
// on /health), optionally over TLS with tlsConfig.
func httpServers(t *testing.T, name string, tlsConfig *tls.Config, ips ...string) *servers {
	t.Helper()
	s := listenSame(t, ips...)
	for i, ln := range s.lns {
		ip := ips[i]
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Host-Seen", r.Host)
				if r.TLS != nil {
					w.Header().Set("X-SNI-Seen", r.TLS.ServerName)
				}
				w.Header().Set("X-Proto-Seen", r.Header.Get("X-Forwarded-Proto"))
				fmt.Fprintf(w, "%s %s", name, ip)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	return s
}

// tcpServers starts TCP servers on ips that write "NAME IP\n" and then
// echo, optionally over TLS.
func tcpServers(t *testing.T, name string, tlsConfig *tls.Config, ips ...string) *servers {
	t.Helper()
	s := listenSame(t, ips...)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the listeners and connections are closed
	for i, ln := range s.lns {
		ip := ips[i]
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		var mu sync.Mutex
		conns := map[net.Conn]bool{}
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns[c] = true
				mu.Unlock()
				wg.Go(func() {
					defer c.Close()
					if _, err := fmt.Fprintf(c, "%s %s\n", name, ip); err != nil {
						return
					}
					io.Copy(c, c)
				})
			}
		})
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	return s
}

func (s *servers) pool() string {
	q := make([]string, len(s.ips))
	for i, ip := range s.ips {
		q[i] = strconv.Quote(ip)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// newRuntime returns a runtime on 127.0.0.1, closed at cleanup.
func newRuntime(t *testing.T, opts config.RuntimeOptions) *config.Runtime {
	t.Helper()
	opts.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if opts.DrainGrace == 0 {
		opts.DrainGrace = 2 * time.Second
	}
	rt := config.NewRuntime(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Close(ctx)
	})
	return rt
}

// load parses and validates a document, failing the test otherwise.
func load(t *testing.T, doc string) *config.Document {
	t.Helper()
	d, err := config.Load([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return d
}

func apply(t *testing.T, rt *config.Runtime, doc string) {
	t.Helper()
	if err := rt.Apply(context.Background(), load(t, doc)); err != nil {
		t.Fatal(err)
	}
}

// get sends a GET through client and returns the status and body.
func get(t *testing.T, c *http.Client, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header
}

// newClient is an HTTP client that does not follow redirects.
func newClient(t *testing.T, tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// greet dials addr (over TLS with cfg) and returns the server's first line.
func greet(addr string, cfg *tls.Config) (string, error) {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// chainPEM is a certificate's chain and key as a document's
// certificate_chain.
func chainPEM(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	var b strings.Builder
	for _, der := range cert.Certificate {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: key})
	return b.String()
}

// jsonString quotes s for a JSON document.
func jsonString(s string) string { return strconv.Quote(s) }

func freePort(t *testing.T) int { return testutil.FreePort(t) }

var errUnexpected = errors.New("unexpected")
