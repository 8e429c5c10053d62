package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// hiddenListener hides its listener's socket, as wrappers do.
type hiddenListener struct{ net.Listener }

// TestServerDelaysAcks: Serve and ServeTLS turn the kernel's quick ACKs
// off for the connections they accept, unless QuickAck is set: through a
// plain TCP listener's TCP_QUICKACK, inherited, or on each connection
// when the listener hides its socket or is MPTCP (Go's default, which
// refuses the option); requests are served the same either way.
func TestServerDelaysAcks(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name     string
		tls      bool
		quickAck bool
		listener string // "tcp", "hidden" (wrapped), "mptcp"
	}{
		{"plain", false, false, "tcp"},
		{"plain/QuickAck", false, true, "tcp"},
		{"tls", true, false, "tcp"},
		{"tls/QuickAck", true, true, "tcp"},
		{"plain/hidden", false, false, "hidden"},
		{"tls/hidden", true, false, "hidden"},
		{"plain/hidden/QuickAck", false, true, "hidden"},
		{"plain/mptcp", false, false, "mptcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lc net.ListenConfig
			lc.SetMultipathTCP(tc.listener == "mptcp")
			ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if tc.listener == "hidden" {
				ln = hiddenListener{ln}
			}
			quick := make(chan int, 2)
			cfg := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
				ConnContext: func(ctx context.Context, c net.Conn) context.Context {
					if tc, ok := c.(*tls.Conn); ok {
						c = tc.NetConn()
					}
					rc, err := c.(*net.TCPConn).SyscallConn()
					if err != nil {
						t.Error(err)
						return ctx
					}
					rc.Control(func(fd uintptr) {
						v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
						if err != nil {
							t.Error(err)
						}
						quick <- v
					})
					return ctx
				},
			}
			s := &Server{Config: cfg, QuickAck: tc.quickAck}
			scheme := "http"
			done := make(chan error, 1)
			if tc.tls {
				scheme = "https"
				cfg.TLSConfig = ca.ServerConfig(t, "lb.test")
				go func() { done <- s.ServeTLS(ln, "", "") }()
			} else {
				go func() { done <- s.Serve(ln) }()
			}
			t.Cleanup(func() {
				s.Close()
				if err := <-done; !errors.Is(err, http.ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			})
			// Two connections: the first may have been accepted by the
			// kernel before Serve set the listener up; the second comes
			// after the first's response, so after the setting.
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig("lb.test"), DisableKeepAlives: true}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for range 2 {
				resp, err := c.Get(scheme + "://" + addr + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
			}
			<-quick
			want := 0
			if tc.quickAck {
				want = 1
			}
			if got := <-quick; got != want {
				t.Errorf("TCP_QUICKACK of the accepted connection = %d, want %d", got, want)
			}
		})
	}
}
