package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestLBProxyBackendHost checks that -backend-host is the Host header the
// servers get in http mode.
func TestLBProxyBackendHost(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "web")
	cfg := withFlags(t, "-backend-host", "bucket.s3-website.test")
	cfg.backends = b.Addr
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if r, ok := b.LastRequest(); !ok || r.Host != "bucket.s3-website.test" {
		t.Errorf("the server got %+v, want Host bucket.s3-website.test", r)
	}
}

// TestLBProxyBackendHostBridge checks that in https-bridge mode
// -backend-host is also the TLS name sent and verified: the server's
// certificate covers that name only.
func TestLBProxyBackendHostBridge(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, "site.test"))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan [2]string, 4)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- [2]string{r.TLS.ServerName, r.Host}:
		default:
		}
		io.WriteString(w, "site\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	front := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, front.Leaf(t, "localhost", "127.0.0.1"))
	cfg := withFlags(t, "-mode", "https-bridge", "-backend-host", "site.test", "-backend-ca", ca.WriteCAFile(t),
		"-cert", certFile, "-key", keyFile)
	cfg.backends = ln.Addr().String()
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: front.ClientConfig("localhost")}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "site\n" {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	if got := <-seen; got != [2]string{"site.test", "site.test"} {
		t.Errorf("SNI and Host %q, want site.test for both", got)
	}
}

func TestLBProxyRejectsBadBackendHost(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "tcp", "-backend-host", "x.test"},
		{"-backend-host", "bad host"},
		{"-backend-host", "x.test/path"},
		{"-backend-host", ":80"},
		{"-mode", "https-bridge", "-backend-host", "x.test", "-backend-sni"},
	} {
		if err := refused(t, withFlags(t, args...)); err == nil || !strings.Contains(err.Error(), "-backend-host") {
			t.Errorf("%v: %v, want a -backend-host error", args, err)
		}
	}
}
