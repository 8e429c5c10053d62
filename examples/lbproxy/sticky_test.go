package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestLBProxyStickyCookie(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	cfg := defaultConfig()
	cfg.backends = a.Addr + "," + b.Addr
	cfg.sticky, cfg.stickyCookie, cfg.stickySecret = "cookie", "LB", strings.Repeat("0f", 16)
	addr := start(t, cfg)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	get := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Backend")
	}
	for i := range 4 {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second}
		home := get(c)
		for range 4 {
			if got := get(c); got != home {
				t.Fatalf("client %d: %s, pinned to %s", i, got, home)
			}
		}
	}
	// Without the cookie, requests are balanced.
	plain := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	seen := map[string]bool{}
	for range 4 {
		seen[get(plain)] = true
	}
	if len(seen) != 2 {
		t.Fatalf("cookieless requests went to %v", seen)
	}
}

func TestLBProxyStickyTable(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.NameServer(t, "a"), testutil.NameServer(t, "b")
	cfg := defaultConfig()
	cfg.mode, cfg.backends = "tcp", a.Addr+","+b.Addr
	cfg.sticky = "table"
	addr := start(t, cfg)
	name := func(src string) string {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(line)
	}
	seen := map[string]bool{}
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		home := name(src)
		seen[home] = true
		for range 3 {
			if got := name(src); got != home {
				t.Fatalf("%s: %s, pinned to %s", src, got, home)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("clients pinned to %v, want both servers used", seen)
	}
}

func TestLBProxyStickyRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name, mode, kind, secret string
		v6Prefix                 int
	}{
		{"unknown kind", "http", "sometimes", "", 0},
		{"cookie over tcp", "tcp", "cookie", "", 0},
		{"secret not hex", "http", "cookie", "zz", 0},
		{"secret too short", "http", "cookie", "abcd", 0},
		{"ipv6 prefix too long", "tcp", "table", "", 129},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode, cfg.backends = tt.mode, "127.0.0.1:1"
			cfg.sticky, cfg.stickySecret, cfg.stickyIPv6Prefix = tt.kind, tt.secret, tt.v6Prefix
			if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), "sticky") {
				t.Fatalf("run = %v, want an error about stickiness", err)
			}
		})
	}
}
