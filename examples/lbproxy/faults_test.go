package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// dyingServer answers every request with the head of a response of 2*half
// bytes and half of its body, then closes the connection.
func dyingServer(t *testing.T, half int) *testutil.RawServer {
	return testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 2*half, bytes.Repeat([]byte("x"), half))
	})
}

// TestLBProxyServerDiesMidResponse: lbproxy's client sees the cut of a
// response as a cut connection after the server's Content-Length, never as
// a complete shorter body.
func TestLBProxyServerDiesMidResponse(t *testing.T) {
	testutil.CheckLeaks(t)
	const half = 64 << 10
	srv := dyingServer(t, half)
	cfg := defaultConfig()
	cfg.backends = srv.Addr
	addr := start(t, cfg)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: faults\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.ContentLength != 2*half || !errors.Is(err, io.ErrUnexpectedEOF) || len(body) > half {
		t.Fatalf("Content-Length %d, body of %d bytes ending with %v; want %d, at most %d, io.ErrUnexpectedEOF",
			resp.ContentLength, len(body), err, 2*half, half)
	}
}

// TestLBProxyTCPServerResets: in tcp mode a server's reset reaches the
// client as a reset.
func TestLBProxyTCPServerResets(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n')
		io.WriteString(c, "partial")
		c.(*net.TCPConn).SetLinger(0)
	})
	cfg := defaultConfig()
	cfg.mode, cfg.backends = "tcp", srv.Addr
	addr := start(t, cfg)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello\n")
	got, err := io.ReadAll(c)
	if !strings.HasPrefix("partial", string(got)) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %q, %v; want a prefix of the server's bytes, then a reset", got, err)
	}
}

// TestLBProxyResettingServerMarkedDown: next to a working server, one that
// resets every connection after reading the request is marked down by the
// health check, after which POSTs (which a reset server would cost a 502:
// they are not sent twice) all succeed; GETs succeed throughout. (That a
// GET meeting the resetting server is retried on another is checked at the
// library's level, by lb's TestFaultL7ServerResets.)
func TestLBProxyResettingServerMarkedDown(t *testing.T) {
	testutil.CheckLeaks(t)
	bad := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		c.(*net.TCPConn).SetLinger(0)
	})
	good := testutil.HTTPBackend(t, "good")
	cfg := withFlags(t, "-health", "http:/", "-health-interval", "100ms")
	cfg.backends = bad.Addr + "," + good.Addr
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	do := func(method string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+"/", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		if method == "GET" {
			req.Body, req.ContentLength = nil, 0
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 4 {
		if code, body := do("GET"); code != http.StatusOK || body != "good\n" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
	}
	testutil.Eventually(t, "the resetting server to be marked down", func() bool {
		for range 4 {
			if code, _ := do("POST"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	if bad.Accepted() == 0 {
		t.Fatal("the resetting server was never checked")
	}
}
