package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/demo"
)

// limitClient is one client connection to lbproxy, from a chosen loopback
// source address, in clear or over TLS.
type limitClient struct {
	net.Conn
	br *bufio.Reader
}

// dialLimit connects to addr from src (127.0.0.1 or 127.0.0.2) and, with
// tlsCfg, completes a TLS handshake; the error is the handshake's.
func dialLimit(t *testing.T, src, addr string, tlsCfg *tls.Config) (*limitClient, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	if tlsCfg != nil {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		c = tc
	}
	return &limitClient{c, bufio.NewReader(c)}, nil
}

// get sends a GET on the connection and returns the response, body read.
func (c *limitClient) get(t *testing.T, prefix string) (*http.Response, error) {
	t.Helper()
	if _, err := io.WriteString(c, prefix+"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.ReadAll(resp.Body)
	return resp, err
}

// line reads the server's greeting.
func (c *limitClient) line() (string, error) {
	s, err := c.br.ReadString('\n')
	return strings.TrimSpace(s), err
}

// limitsSetup is lbproxy in one mode with its servers and clients' TLS.
type limitsSetup struct {
	mode      string
	l7        bool
	configure func(cfg *config)
	client    *tls.Config // nil: clear
}

func limitsSetups(t *testing.T) []limitsSetup {
	t.Helper()
	t.Setenv("TMPDIR", t.TempDir()) // a generated CA file
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "localhost", "127.0.0.1"))
	front := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	sca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	scaFile, err := sca.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tlsServers, err := demo.TLSBackends(t.Context(), sca, "a.localhost")
	if err != nil {
		t.Fatal(err)
	}
	httpsServers, err := demo.HTTPSBackends(t.Context(), sca, 1)
	if err != nil {
		t.Fatal(err)
	}
	web := testutil.HTTPBackend(t, "web").Addr
	plain := testutil.NameServer(t, "plain").Addr
	certs := func(backends string) func(*config) {
		return func(c *config) {
			c.backends, c.certFile, c.keyFile, c.backendCA = backends, certFile, keyFile, scaFile
		}
	}
	return []limitsSetup{
		{"http", true, func(c *config) { c.backends = web }, nil},
		{"https", true, certs(web), front},
		{"https-bridge", true, certs(httpsServers[0]), front},
		{"tcp", false, func(c *config) { c.backends = plain }, nil},
		{"tls", false, certs(plain), front},
		{"tls-bridge", false, certs(tlsServers[0]), front},
		{"tls-passthrough", false, func(c *config) { c.backends = tlsServers[0] },
			&tls.Config{RootCAs: sca.Pool(), ServerName: "a.localhost"}},
	}
}

// served checks that c is served: a 200 at L7, a greeting at L4.
func (s limitsSetup) served(t *testing.T, c *limitClient, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if s.l7 {
		resp, err := c.get(t, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v, %v", what, resp, err)
		}
		return
	}
	if line, err := c.line(); err != nil || line == "" {
		t.Fatalf("%s: greeting %q, %v", what, line, err)
	}
}

func TestLBProxyClientMaxConnInEveryMode(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, s := range limitsSetups(t) {
		t.Run(s.mode, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode, cfg.clientMaxConn = s.mode, 1
			s.configure(cfg)
			addr := start(t, cfg)
			first, err := dialLimit(t, "127.0.0.1", addr, s.client)
			s.served(t, first, err, "the first connection")

			second, err := dialLimit(t, "127.0.0.1", addr, s.client)
			if s.l7 {
				if err != nil {
					t.Fatal(err)
				}
				resp, err := second.get(t, "")
				if err != nil || resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
					t.Fatalf("a second connection of the client: %v, %v; want 429 and close", resp, err)
				}
			} else if err == nil {
				if line, err := second.line(); err == nil {
					t.Fatalf("a second connection of the client was served: %q", line)
				}
			}

			other, err := dialLimit(t, "127.0.0.2", addr, s.client)
			s.served(t, other, err, "another client")
		})
	}
}

// TestLBProxyAcceptWaits checks that a connection beyond -maxconn or
// -conn-rate waits, neither served nor closed, and is served once the
// first connection closes (-maxconn) or a token comes (-conn-rate at 2/s,
// burst 1), in both kinds of modes.
func TestLBProxyAcceptWaits(t *testing.T) {
	testutil.CheckLeaks(t)
	limits := []struct {
		name  string
		set   func(*config)
		close bool // the first connection must close for the second to be served
	}{
		{"maxconn", func(c *config) { c.maxConn = 1 }, true},
		{"conn-rate", func(c *config) { c.connRate, c.connRateBurst = 2, 1 }, false},
	}
	for _, lim := range limits {
		for _, mode := range []string{"tcp", "http"} {
			t.Run(lim.name+"/"+mode, func(t *testing.T) {
				cfg := defaultConfig()
				cfg.mode = mode
				lim.set(cfg)
				s := limitsSetup{mode: mode, l7: mode == "http"}
				if s.l7 {
					cfg.backends = testutil.HTTPBackend(t, "web").Addr
				} else {
					cfg.backends = testutil.NameServer(t, "plain").Addr
				}
				addr := start(t, cfg)
				first, err := dialLimit(t, "127.0.0.1", addr, nil)
				s.served(t, first, err, "the first connection")
				second, _ := dialLimit(t, "127.0.0.2", addr, nil)
				if s.l7 {
					io.WriteString(second, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
				}
				// The second waits: nothing arrives, and it is not closed.
				second.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
				var ne net.Error
				if n, err := second.Read(make([]byte, 1)); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("a connection beyond -%s: read %d, %v; want it waiting", lim.name, n, err)
				}
				second.SetReadDeadline(time.Now().Add(10 * time.Second))
				if lim.close {
					first.Close()
				}
				if s.l7 {
					resp, err := http.ReadResponse(second.br, nil)
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("the waiting connection: %v, %v", resp, err)
					}
					resp.Body.Close()
				} else if line, err := second.line(); err != nil || line != "plain" {
					t.Fatalf("the waiting connection: %q, %v", line, err)
				}
			})
		}
	}
}

func TestLBProxyClientRate(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := defaultConfig()
	cfg.backends = testutil.HTTPBackend(t, "web").Addr
	cfg.clientRate, cfg.clientRateBurst = 5, 2
	addr := start(t, cfg)
	c, _ := dialLimit(t, "127.0.0.1", addr, nil)
	// The burst is 2 and a token comes every 200 ms: requests in a row
	// soon find the bucket empty.
	limited := false
	for range 20 {
		resp, err := c.get(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			if ra := resp.Header.Get("Retry-After"); ra != "1" {
				t.Errorf("Retry-After %q, want 1 (second, rounded up)", ra)
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("20 requests in a row at a rate of 5/s: no 429")
	}
	testutil.Eventually(t, "a request let in after the refill", func() bool {
		resp, err := c.get(t, "")
		return err == nil && resp.StatusCode == 200
	})
}

func TestLBProxyLimitsFollowTheProxyHeader(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := defaultConfig()
	cfg.backends = testutil.HTTPBackend(t, "web").Addr
	cfg.acceptProxy, cfg.clientMaxConn = "127.0.0.1", 1
	addr := start(t, cfg)
	header := func(src string) string { return "PROXY TCP4 " + src + " 127.0.0.1 40000 8080\r\n" }
	for i, src := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1"} {
		c, _ := dialLimit(t, "127.0.0.1", addr, nil)
		resp, err := c.get(t, header(src))
		want := 200
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if err != nil || resp.StatusCode != want {
			t.Fatalf("client %s: %v, %v; want %d", src, resp, err, want)
		}
	}
}

// TestLBProxyHealthzHoldingAccepts: while -maxconn or -conn-rate holds the
// accept loop back on purpose, /healthz stays ok (the accept check, whose
// connection waits in the queue, is not held against lbproxy).
func TestLBProxyHealthzHoldingAccepts(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tc := range []struct {
		name string
		set  func(*config)
	}{
		{"maxconn", func(c *config) { c.maxConn = 1 }},
		// One connection takes the burst; the next token is 100 s away.
		{"conn-rate", func(c *config) { c.connRate, c.connRateBurst = 0.01, 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode = "tcp"
			tc.set(cfg)
			cfg.backends = testutil.NameServer(t, "plain").Addr
			cfg.admin, cfg.checkInterval = "127.0.0.1:0", 50*time.Millisecond
			addr, lines := startOut(t, cfg)
			var admin string
			for _, l := range lines {
				if a, ok := strings.CutPrefix(l, "admin endpoints on "); ok {
					admin = strings.TrimSuffix(a, "/")
				}
			}
			if admin == "" {
				t.Fatalf("no admin address in %q", lines)
			}
			held, err := dialLimit(t, "127.0.0.1", addr, nil)
			s := limitsSetup{mode: "tcp"}
			s.served(t, held, err, "the connection that reaches the limit")
			// Several check intervals at the limit: /healthz stays ok.
			hc := &http.Client{Timeout: 5 * time.Second}
			defer hc.CloseIdleConnections()
			for range 5 {
				resp, err := hc.Get(admin + "/healthz")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("/healthz at -%s: %d %s", tc.name, resp.StatusCode, body)
				}
				time.Sleep(cfg.checkInterval) // let checks run at the limit
			}
		})
	}
}

func TestLBProxyRejectsBadLimits(t *testing.T) {
	for _, args := range [][]string{
		{"-maxconn", "-1"},
		{"-client-maxconn", "-1"},
		{"-conn-rate", "-1"},
		{"-conn-rate-burst", "5"},
		{"-conn-rate", "1", "-conn-rate-burst", "-1"},
		{"-client-rate", "-1"},
		{"-client-rate-burst", "5"},
		{"-client-rate", "1", "-client-rate-burst", "-1"},
		{"-client-maxconn", "1", "-client-table-size", "0"},
		{"-client-maxconn", "1", "-client-idle", "0s"},
		{"-client-maxconn", "1", "-client-ipv6-prefix", "129"},
	} {
		if err := refused(t, withFlags(t, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestLBProxyClientRateTCP(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := defaultConfig()
	cfg.mode, cfg.backends = "tcp", testutil.NameServer(t, "plain").Addr
	cfg.clientRate = 2 // a burst of 2, then a connection every 500 ms
	addr := start(t, cfg)
	s := limitsSetup{mode: "tcp"}
	served, refused := 0, 0
	for range 10 {
		c, _ := dialLimit(t, "127.0.0.1", addr, nil)
		if _, err := c.line(); err != nil {
			refused++
			break
		}
		served++
		c.Close()
	}
	if refused == 0 || served < 2 {
		t.Fatalf("10 connections in a row at 2/s: %d served before a refusal", served)
	}
	c, err := dialLimit(t, "127.0.0.2", addr, nil)
	s.served(t, c, err, "another client")
	testutil.Eventually(t, "a connection let in after the refill", func() bool {
		c, _ := dialLimit(t, "127.0.0.1", addr, nil)
		defer c.Close()
		_, err := c.line()
		return err == nil
	})
}
