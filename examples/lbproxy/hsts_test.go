package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestLBProxyHSTS(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	sts := func(t *testing.T, args ...string) string {
		t.Helper()
		addr, lines := startOut(t, withFlags(t, args...))
		roots := demoRoots(t, lines)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %s", resp.Status)
		}
		return resp.Header.Get("Strict-Transport-Security")
	}
	if got := sts(t, "-mode", "https", "-hsts", "31536000"); got != "max-age=31536000" {
		t.Errorf("https -hsts 31536000: %q", got)
	}
	if got := sts(t, "-mode", "https-bridge", "-hsts", "600"); got != "max-age=600" {
		t.Errorf("https-bridge -hsts 600: %q", got)
	}
	if got := sts(t, "-mode", "https"); got != "" {
		t.Errorf("https without -hsts: %q", got)
	}

	// Plain HTTP never carries it: lbproxy refuses the flag there.
	for _, args := range [][]string{{"-mode", "http", "-hsts", "600"}, {"-mode", "tls", "-hsts", "600"}, {"-mode", "https", "-hsts", "-1"}} {
		if err := refused(t, withFlags(t, args...)); err == nil || !strings.Contains(err.Error(), "-hsts") {
			t.Errorf("%q: %v, want -hsts refused", args, err)
		}
	}
}

// TestLBProxySessionResumption checks that the TLS modes resume sessions
// with their shared ticket keys.
func TestLBProxySessionResumption(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir())
	for _, mode := range []string{"https", "tls"} {
		t.Run(mode, func(t *testing.T) {
			addr, lines := startOut(t, withFlags(t, "-mode", mode))
			cfg := &tls.Config{RootCAs: demoRoots(t, lines), ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(1)}
			if mode == "https" {
				cfg.NextProtos = []string{"http/1.1"}
			}
			for i, want := range []bool{false, true} {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if mode == "https" {
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
				}
				// Reading takes in the TLS 1.3 tickets sent after the handshake.
				if _, err := c.Read(make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
				if got := c.ConnectionState().DidResume; got != want {
					t.Errorf("connection %d resumed: %v, want %v", i, got, want)
				}
				c.Close()
			}
		})
	}
}
