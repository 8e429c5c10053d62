package main

import (
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// sockKeepAlive finds, among this process's descriptors, the TCP socket
// from local to peer (lbproxy runs in the test's process) and returns its
// SO_KEEPALIVE and TCP_KEEPIDLE (seconds).
func sockKeepAlive(t *testing.T, local, peer netip.AddrPort) (on bool, idle int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	addrPort := func(sa syscall.Sockaddr) netip.AddrPort {
		if in, ok := sa.(*syscall.SockaddrInet4); ok {
			return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
		}
		return netip.AddrPort{}
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil || addrPort(sa) != local {
			continue
		}
		pa, err := syscall.Getpeername(fd)
		if err != nil || addrPort(pa) != peer {
			continue
		}
		ka, err := testutil.KeepAliveOfFd(fd)
		if err != nil {
			t.Fatal(err)
		}
		return ka.On, ka.Idle
	}
	t.Fatalf("no socket from %s to %s", local, peer)
	return false, 0
}

// TestLBProxyTCPKeepAlive: in tcp mode, the connection lbproxy accepts from
// the client and the one it dials to the server have no TCP keep-alive by
// default, and -client-tcp-keepalive's and -server-tcp-keepalive's when set.
func TestLBProxyTCPKeepAlive(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tc := range []struct {
		args                   []string
		clientIdle, serverIdle int // 0: off
	}{
		{nil, 0, 0},
		{[]string{"-client-tcp-keepalive", "31s", "-server-tcp-keepalive", "37s"}, 31, 37},
		{[]string{"-server-tcp-keepalive", "37s"}, 0, 37},
	} {
		be, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := be.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}()
		cfg := withFlags(t, append([]string{"-mode", "tcp"}, tc.args...)...)
		cfg.backends = be.Addr().String()
		addr := start(t, cfg)
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var sc net.Conn
		select {
		case sc = <-accepted:
		case <-time.After(10 * time.Second):
		}
		if sc == nil {
			t.Fatalf("%v: the server saw no connection", tc.args)
		}
		// A byte through the proxy: its accept and its dial have returned,
		// so Go has set (or not) keep-alive on both sockets after their
		// handshakes, which the two ends here may see complete first.
		sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sc, make([]byte, 1)); err != nil {
			t.Fatalf("%v: no byte through the proxy: %v", tc.args, err)
		}
		ap := func(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }
		check := func(side string, local, peer netip.AddrPort, want int) {
			on, idle := sockKeepAlive(t, local, peer)
			if on != (want > 0) || (on && idle != want) {
				t.Errorf("%v: %s socket keep-alive %v, idle %d s; want idle %d s (0: off)", tc.args, side, on, idle, want)
			}
		}
		check("client", ap(c.RemoteAddr()), ap(c.LocalAddr()), tc.clientIdle)
		check("server", ap(sc.RemoteAddr()), ap(sc.LocalAddr()), tc.serverIdle)
		c.Close()
		sc.Close()
		be.Close()
	}
}
