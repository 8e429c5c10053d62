package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestProxyProtocolExample(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ direct, behind string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1/32", func(d, b string) { ready <- addrs{d, b} })
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()

	ask := func(addr, header string) (string, net.Addr) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%sGET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n", header)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", c.LocalAddr()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), c.LocalAddr()
	}
	// A direct client: the backend learns its own address.
	got, local := ask(a.direct, "")
	if want := "backend: the client is " + local.String() + "\n"; got != want {
		t.Fatalf("direct: %q, want %q", got, want)
	}
	// Behind a load balancer: the address its header carries.
	got, _ = ask(a.behind, "PROXY TCP4 192.0.2.44 198.51.100.1 51000 443\r\n")
	if want := "backend: the client is 192.0.2.44:51000\n"; got != want {
		t.Fatalf("proxied: %q, want %q", got, want)
	}
	// Without a header the proxied frontend refuses the connection.
	if got, _ = ask(a.behind, ""); strings.Contains(got, "client is") {
		t.Fatalf("proxied without header: %q", got)
	}
}
