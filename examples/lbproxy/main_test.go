package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// start runs lbproxy with cfg on a free loopback port and returns its address.
func start(t *testing.T, cfg *config) string {
	t.Helper()
	cfg.listen = "127.0.0.1:0"
	if cfg.grace == 0 {
		cfg.grace = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if _, addr, ok := strings.Cut(sc.Text(), " on "); ok && strings.HasPrefix(sc.Text(), "lbproxy:") {
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			return addr
		}
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-done)
	return ""
}

func TestLBProxyHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	cfg := defaultConfig()
	cfg.backends = a.Addr + "," + b.Addr
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	seen := map[string]int{}
	for range 10 {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Backend")]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("spread %v, want 5 each", seen)
	}
}

func TestLBProxyTCP(t *testing.T) {
	testutil.CheckLeaks(t)
	e := testutil.EchoServer(t)
	cfg := defaultConfig()
	cfg.mode, cfg.backends, cfg.algorithm = "tcp", e.Addr, "leastconn"
	addr := start(t, cfg)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestLBProxyRejectsBadConfig(t *testing.T) {
	for _, cfg := range []*config{
		{mode: "gopher", backends: "127.0.0.1:1", algorithm: "roundrobin", listen: "127.0.0.1:0"},
		{mode: "http", backends: "nohostport", algorithm: "roundrobin", listen: "127.0.0.1:0"},
		{mode: "http", backends: "127.0.0.1:1", algorithm: "bogus", listen: "127.0.0.1:0"},
	} {
		if err := run(context.Background(), cfg, io.Discard); err == nil {
			t.Errorf("run(%+v) succeeded", cfg)
		}
	}
}
