package lb_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// TestUnwrapReachesSocketUnderProxyListener: the L4 copy finds the TCP
// socket under a connection accepted through a proxyproto.Listener, so
// that it can splice, and takes the bytes that came with the header.
func TestUnwrapReachesSocketUnderProxyListener(t *testing.T) {
	l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	c := dial(t, l.Addr().String())
	defer c.Close()
	_, err := io.WriteString(c, "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\nhello")
	must(t, err)
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	var sc net.Conn
	select {
	case r := <-ch:
		must(t, r.err)
		sc = r.c
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
	}
	defer sc.Close()
	conn := lb.NewConn(sc, "fe")
	raw, pending := lb.UnwrapConnForTest(conn)
	if _, ok := raw.(*net.TCPConn); !ok {
		t.Fatalf("unwrapped to %T, want *net.TCPConn", raw)
	}
	if string(pending) != "hello" {
		t.Fatalf("pending %q, want the bytes read with the header", pending)
	}
}
