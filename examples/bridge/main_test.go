package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/demo"
)

func start(t *testing.T, o options) (string, *x509.CertPool, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type ready struct {
		addr  string
		roots *x509.CertPool
	}
	rc := make(chan ready, 1)
	done := make(chan error, 1)
	o.listen = "127.0.0.1:0"
	go func() { done <- run(ctx, o, func(a string, r *x509.CertPool) { rc <- ready{a, r} }) }()
	select {
	case r := <-rc:
		return r.addr, r.roots, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	return "", nil, nil
}

func TestBridgeExampleHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	// Servers signed by a CA the proxy is not told about.
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	untrusted, err := demo.HTTPSBackends(bctx, ca, 1)
	if err != nil {
		t.Fatal(err)
	}
	untrustedAddr := untrusted[0]
	tests := []struct {
		name   string
		opt    options
		status int
		body   string
	}{
		{"demo servers verified", options{}, 200, "over HTTP/1.1 with TLS (you are 127.0.0.1, https)"},
		{"HTTP/2 to the servers", options{h2: true}, 200, "over HTTP/2.0 with TLS (you are 127.0.0.1, https)"},
		{"untrusted server refused", options{backends: untrustedAddr}, 502, ""},
		{"verification off", options{backends: untrustedAddr, insecure: true}, 200, "over HTTP/1.1 with TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, roots, stop := start(t, tt.opt)
			defer stop()
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
				t.Errorf("%d %q", resp.StatusCode, body)
			}
		})
	}
	bcancel()
}

func TestBridgeExampleL4(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	addr, roots, stop := start(t, options{l4: true})
	defer stop()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "hello from tls-backend-") {
		t.Fatalf("%q, %v", line, err)
	}
	c.Write([]byte("ping\n"))
	if echo, err := r.ReadString('\n'); err != nil || !strings.HasSuffix(echo, ": ping\n") {
		t.Fatalf("echo %q, %v", echo, err)
	}
}
