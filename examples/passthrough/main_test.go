package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/demo"
)

func TestPassthroughExample(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	ctx, cancel := context.WithCancel(context.Background())
	type ready struct {
		addr string
		ca   *demo.CA
	}
	rc := make(chan ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", "", "", func(a string, ca *demo.CA) { rc <- ready{a, ca} })
	}()
	var r ready
	select {
	case r = <-rc:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the example did not start serving")
	}
	tests := []struct{ sni, want string }{
		{"a.localhost", "hello from a.localhost\n"},
		{"b.localhost", "hello from b.localhost\n"},
		{"127.0.0.1", "hello from a.localhost\n"}, // no SNI: the default route
	}
	for _, tt := range tests {
		d := &tls.Dialer{Config: &tls.Config{ServerName: tt.sni, RootCAs: r.ca.Pool()}}
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := d.DialContext(dctx, "tcp", r.addr)
		dcancel()
		if err != nil {
			t.Fatalf("%s: %v", tt.sni, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		cert := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
		c.Close()
		if err != nil || line != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.sni, line, err, tt.want)
		}
		// The server's own certificate: the session ends there.
		if want := tt.want[len("hello from ") : len(tt.want)-1]; cert.Subject.CommonName != want {
			t.Errorf("%s: certificate of %q", tt.sni, cert.Subject.CommonName)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
