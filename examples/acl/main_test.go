package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// start runs the example with cfg on free loopback ports and returns its
// plain and TLS addresses.
func start(t *testing.T, cfg config) (plain, secure string) {
	t.Helper()
	cfg.listen, cfg.listenTLS, cfg.grace = "127.0.0.1:0", "127.0.0.1:0", time.Second
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var ok bool
		if plain, ok = strings.CutPrefix(sc.Text(), "acl: http on "); ok {
			plain, secure, _ = strings.Cut(plain, ", https on ")
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			return plain, secure
		}
	}
	cancel()
	t.Fatalf("example did not start: %v", <-done)
	return "", ""
}

func TestACLExample(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "app.example", "*.app.example", "api.example"))
	app, api := testutil.HTTPBackend(t, "app"), testutil.HTTPBackend(t, "api")
	plain, secure := start(t, config{backends: app.Addr + "," + api.Addr, office: "127.0.0.0/8", certFile: certFile, keyFile: keyFile})
	_, tlsPort, _ := strings.Cut(secure, ":")

	c := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "app.example"}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	tests := []struct {
		name, url, host string
		status          int
		backend, loc    string
	}{
		{"http redirected to https", "http://" + plain + "/docs?x=1", "app.example", 308, "", "https://app.example:" + tlsPort + "/docs?x=1"},
		{"http admin redirected too", "http://" + plain + "/admin", "app.example", 308, "", "https://app.example:" + tlsPort + "/admin"},
		{"app host", "https://" + secure + "/", "app.example", 200, "app", ""},
		{"app subdomain", "https://" + secure + "/", "www.app.example", 200, "app", ""},
		{"api host", "https://" + secure + "/v1", "api.example", 200, "api", ""},
		{"unknown host to default", "https://" + secure + "/", "other.example", 200, "app", ""},
		{"admin denied", "https://" + secure + "/admin/", "api.example", 403, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Host = tt.host
			resp, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("X-Backend") != tt.backend || resp.Header.Get("Location") != tt.loc {
				t.Fatalf("%d from %q to %q, want %d from %q to %q", resp.StatusCode, resp.Header.Get("X-Backend"),
					resp.Header.Get("Location"), tt.status, tt.backend, tt.loc)
			}
		})
	}
}

func TestACLExampleOutsideOffice(t *testing.T) {
	testutil.CheckLeaks(t)
	app, api := testutil.HTTPBackend(t, "app"), testutil.HTTPBackend(t, "api")
	plain, secure := start(t, config{backends: app.Addr + "," + api.Addr, office: "10.0.0.0/8,2001:db8::/32"})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(c.CloseIdleConnections)
	for _, u := range []string{"http://" + plain + "/", "https://" + secure + "/"} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: %s, want the connection closed", u, resp.Status)
		}
	}
	if app.Requests()+api.Requests() != 0 {
		t.Fatal("a request from outside the office reached a backend")
	}
}

func TestParseOffice(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8, ::1": "[10.0.0.0/8 ::1/128]",
		"192.0.2.7":       "[192.0.2.7/32]",
		"":                "error",
		"10.0.0.0/33":     "error",
		"nope":            "error",
	} {
		ps, err := parseOffice(in)
		got := "error"
		if err == nil {
			got = fmt.Sprint(ps)
		}
		if got != want {
			t.Errorf("parseOffice(%q) = %s, want %s", in, got, want)
		}
	}
}
