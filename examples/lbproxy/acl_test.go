package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func TestLBProxyAllowHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	be := testutil.HTTPBackend(t, "a")
	cfg := withFlags(t, "-allow", "127.0.0.2/32, ::1")
	cfg.backends = be.Addr
	addr := start(t, cfg)
	for _, tt := range []struct {
		src  string
		want string
	}{
		{"127.0.0.1", "closed"},
		{"127.0.0.2", "HTTP/1.1 200 OK"},
		{"127.0.0.3", "closed"},
	} {
		c := dialFrom(t, tt.src, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		got := strings.TrimSpace(line)
		if err != nil {
			got = "closed"
		}
		if got != tt.want {
			t.Errorf("from %s: %q, want %q", tt.src, got, tt.want)
		}
	}
	if be.Requests() != 1 {
		t.Errorf("backend saw %d requests, want 1", be.Requests())
	}
}

func TestLBProxyDenyBeforeAllowTCP(t *testing.T) {
	testutil.CheckLeaks(t)
	e := testutil.EchoServer(t)
	cfg := withFlags(t, "-allow", "127.0.0.0/8", "-deny", "127.0.0.1,127.0.0.4/32")
	cfg.mode, cfg.backends = "tcp", e.Addr
	addr := start(t, cfg)
	for _, tt := range []struct {
		src  string
		want string
	}{
		{"127.0.0.1", "closed"},
		{"127.0.0.3", "ping"},
		{"127.0.0.4", "closed"},
	} {
		c := dialFrom(t, tt.src, addr)
		io.WriteString(c, "ping")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		c.Close()
		got := string(b)
		if err != nil || got == "" {
			got = "closed"
		}
		if got != tt.want {
			t.Errorf("from %s: %q, want %q", tt.src, got, tt.want)
		}
	}
	if e.Conns() != 1 {
		t.Errorf("echo server saw %d connections, want 1", e.Conns())
	}
}

func TestLBProxyACLBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-allow", "10.0.0.0/33"}, {"-deny", "nope"}} {
		cfg := withFlags(t, append([]string{"-backends", "127.0.0.1:1"}, args...)...)
		if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: run = %v, want an error naming the flag", args, err)
		}
	}
}
