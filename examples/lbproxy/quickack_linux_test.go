package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbkit/lbkit/internal/testutil"
)

// pureAcksIn makes one request on a new connection to addr and returns
// how many segments without data the client received by the end of the
// response: the SYN-ACK, and the proxy's ACK of the request when it sends
// one of its own rather than with the response.
func pureAcksIn(t *testing.T, addr string) uint32 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info.Segs_in - info.Data_segs_in
}

// TestLBProxyQuickAck: by default the proxy acknowledges a new
// connection's request with its response; with -quick-ack the kernel
// acknowledges it at once, in a segment of its own.
func TestLBProxyQuickAck(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "a")
	acks := map[bool]uint32{}
	for _, quick := range []bool{false, true} {
		args := []string{"-backends", backend.Addr, "-http-engine", "lbkit"}
		if quick {
			args = append(args, "-quick-ack")
		}
		addr := start(t, withFlags(t, args...))
		pureAcksIn(t, addr) // the kernel may have taken it before the listener was set
		acks[quick] = pureAcksIn(t, addr)
	}
	if acks[true] <= acks[false] {
		t.Errorf("segments without data received: %d with -quick-ack, %d without; want more with it", acks[true], acks[false])
	}
}
