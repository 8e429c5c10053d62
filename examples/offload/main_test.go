package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestOffloadExample(t *testing.T) {
	testutil.CheckLeaks(t)
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
