package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// addrBackend serves, behind a proxyproto.Listener trusting loopback, HTTP
// requests (answered with the client address the PROXY header carried) or
// raw connections (greeted with it).
func addrBackend(t *testing.T, kind string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	done := make(chan struct{})
	if kind == "http" {
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s|%s", r.RemoteAddr, r.Header.Get("X-Forwarded-For"))
		})}
		go func() { defer close(done); srv.Serve(pl) }()
		t.Cleanup(func() { srv.Close(); <-done })
	} else {
		go func() {
			defer close(done)
			for {
				c, err := pl.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s\n", c.RemoteAddr())
				c.Close()
			}
		}()
		t.Cleanup(func() { pl.Close(); <-done })
	}
	return pl.Addr().String()
}

func TestLBProxyProxyProtocol(t *testing.T) {
	const upstream = "PROXY TCP4 192.0.2.9 198.51.100.1 40000 443\r\n"
	tests := []struct {
		name, mode, send, accept string
		header                   string // sent by the test client first
		want                     string // prefix of the answer
	}{
		{"tcp v1 from trusted upstream", "tcp", "v1", "127.0.0.1", upstream, "192.0.2.9:40000\n"},
		{"tcp v2 direct client", "tcp", "v2", "", "", "127.0.0.1:"},
		{"http v2-ssl-cn from trusted upstream", "http", "v2-ssl-cn", "127.0.0.0/8,::1", upstream, "192.0.2.9:40000|192.0.2.9"},
		{"http v1 direct client", "http", "v1", "", "", "127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cfg := defaultConfig()
			cfg.mode, cfg.backends = tt.mode, addrBackend(t, tt.mode)
			cfg.proxyProtocol, cfg.acceptProxy = tt.send, tt.accept
			addr := start(t, cfg)
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.header)
			var got string
			if tt.mode == "tcp" {
				got, err = bufio.NewReader(c).ReadString('\n')
			} else {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				var resp *http.Response
				if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					got = string(b)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("backend learnt %q, want %q...", got, tt.want)
			}
		})
	}
}

func TestLBProxyProxyProtocolRefusesUntrusted(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := defaultConfig()
	cfg.mode, cfg.backends = "tcp", addrBackend(t, "tcp")
	cfg.proxyProtocol, cfg.acceptProxy = "v2", "10.0.0.0/8"
	addr := start(t, cfg)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "PROXY TCP4 192.0.2.9 198.51.100.1 40000 443\r\n")
	// Closed with the header unread: EOF or a reset.
	if b, err := io.ReadAll(c); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || len(b) != 0 {
		t.Fatalf("untrusted client got %q, %v; want the connection closed", b, err)
	}
}

func TestLBProxyProxyProtocolBadFlags(t *testing.T) {
	for _, tt := range []struct{ send, accept, want string }{
		{"v3", "", "-proxy-protocol"},
		{"none", "10.0.0.0/33", "-accept-proxy"},
		{"none", "nonsense", "-accept-proxy"},
		{"v1", ",", "-accept-proxy"},
	} {
		cfg := defaultConfig()
		cfg.backends = "127.0.0.1:1"
		cfg.proxyProtocol, cfg.acceptProxy = tt.send, tt.accept
		if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("-proxy-protocol %q -accept-proxy %q: run = %v, want an error about %s", tt.send, tt.accept, err, tt.want)
		}
	}
}

// TestLBProxyProxyProtocolBeforeACL: the accept-time ACL sees the client
// address a PROXY header carries, not the upstream's.
func TestLBProxyProxyProtocolBeforeACL(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := defaultConfig()
	cfg.mode, cfg.backends = "tcp", addrBackend(t, "tcp")
	cfg.proxyProtocol, cfg.acceptProxy = "v1", "127.0.0.1"
	// Denying the upstream's own address denies nothing when the ACL
	// sees the carried client addresses.
	cfg.deny = "127.0.0.1,192.0.2.0/24"
	addr := start(t, cfg)
	for _, tc := range []struct{ client, want string }{
		{"198.51.100.7", "198.51.100.7:40000\n"},
		{"192.0.2.9", ""}, // denied
	} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "PROXY TCP4 %s 203.0.113.1 40000 443\r\n", tc.client)
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != tc.want {
			t.Fatalf("client %s: backend answered %q, want %q", tc.client, got, tc.want)
		}
	}
}
