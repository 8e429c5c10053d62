package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestOffloadExample(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "localhost", "127.0.0.1"))
	tests := []struct {
		name string
		opt  options
	}{
		{"generated certificate", options{}},
		{"PEM files", options{certFile: certFile, keyFile: keyFile}},
		{"modern profile", options{profile: "modern"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			type ready struct {
				addr  string
				roots *x509.CertPool
			}
			rc := make(chan ready, 1)
			done := make(chan error, 1)
			tt.opt.listen = "127.0.0.1:0"
			go func() { done <- run(ctx, tt.opt, func(a string, r *x509.CertPool) { rc <- ready{a, r} }) }()
			var r ready
			select {
			case r = <-rc:
			case err := <-done:
				t.Fatal(err)
			}
			if r.roots == nil {
				r.roots = ca.Pool()
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.roots}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + r.addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), "hello from backend-") || !strings.Contains(string(body), "(you are 127.0.0.1, path /x)") {
				t.Errorf("%s: %q", resp.Proto, body)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOffloadExampleACME obtains the certificate from Pebble over ACME
// (TLS-ALPN-01 on -listen, HTTP-01 on -acme-http) and serves it.
func TestOffloadExampleACME(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	httpPort, tlsPort := testutil.FreePort(t), testutil.FreePort(t)
	pb := testutil.StartPebble(t, httpPort, tlsPort)
	ctx, cancel := context.WithCancel(context.Background())
	o := options{
		listen:        "127.0.0.1:" + strconv.Itoa(tlsPort),
		acmeHosts:     "acme.test",
		acmeDirectory: pb.DirectoryURL,
		acmeCA:        pb.APICAFile,
		acmeHTTP:      "127.0.0.1:" + strconv.Itoa(httpPort),
		acmeCache:     t.TempDir(),
		profile:       "intermediate",
	}
	rc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, func(a string, _ *x509.CertPool) { rc <- a }) }()
	var addr string
	select {
	case addr = <-rc:
	case err := <-done:
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "acme.test", RootCAs: pb.Roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello from backend-") || resp.TLS.PeerCertificates[0].DNSNames[0] != "acme.test" {
		t.Errorf("%q with a certificate for %v", body, resp.TLS.PeerCertificates[0].DNSNames)
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
