package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/testutil"
)

func noTLS() *tls.Config { return &tls.Config{} }

func TestParseHealth(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want health.Probe // nil: error (https: checked by kind only)
	}{
		{"tcp", health.TCP{}},
		{"http", health.HTTP{Path: "/"}},
		{"http:/healthz", health.HTTP{Path: "/healthz"}},
		{"mysql", health.MySQL{}},
		{"mysql:check", health.MySQL{User: "check"}},
		{"pgsql:lb", health.PostgreSQL{User: "lb"}},
		{"redis", health.Redis{}},
		{"ldap", health.LDAP{}},
		{"http:healthz", nil},
		{"http:", nil},
		{"tcp:80", nil},
		{"redis:pw", nil},
		{"mysql:a b", nil},
		{"gopher", nil},
		{"", nil},
	} {
		got, err := parseHealth(tc.spec, noTLS)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: accepted as %#v", tc.spec, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %#v, %v; want %#v", tc.spec, got, err, tc.want)
		}
	}
	if p, err := parseHealth("https:/healthz", noTLS); err != nil || p == nil {
		t.Errorf("https: %v", err)
	}
}

func FuzzParseHealth(f *testing.F) {
	for _, s := range []string{"tcp", "http:/healthz", "https:/", "mysql:check", "pgsql:postgres", "redis", "ldap", "http:x", "mysql:", "tcp:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := parseHealth(spec, noTLS)
		if (p == nil) == (err == nil) {
			t.Fatalf("%q: probe %v, error %v", spec, p, err)
		}
		if err == nil && strings.ContainsAny(spec, " \r\n\t\x00") {
			t.Fatalf("%q accepted", spec)
		}
	})
}

// TestLBProxyHealth runs lbproxy -health http:/ over two backends, kills
// one and checks that traffic leaves it, then comes back after a restart.
func TestLBProxyHealth(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	cfg := withFlags(t, "-health", "http:/", "-health-interval", "100ms")
	cfg.backends = a.Addr + "," + b.Addr
	cfg.retries = 0 // without health checks, requests to a dead b would fail
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	spread := func() map[string]int {
		seen := map[string]int{}
		for range 10 {
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[resp.Header.Get("X-Backend")]++
		}
		return seen
	}
	waitFor := func(what string, ok func(map[string]int) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			seen := spread()
			if ok(seen) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: spread %v", what, seen)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("both up", func(s map[string]int) bool { return s["a"] == 5 && s["b"] == 5 })
	b.Close()
	if s := spread(); s["a"] == 10 {
		t.Fatalf("b out at once, before any check: %v", s)
	}
	waitFor("b out", func(s map[string]int) bool { return s["a"] == 10 })
	b.Restart(t)
	waitFor("b back", func(s map[string]int) bool { return s["a"] == 5 && s["b"] == 5 })
}

func TestLBProxyHealthRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-health", "gopher"}, {"-health", "tcp", "-health-interval", "0s"}} {
		cfg := withFlags(t, append([]string{"-backends", "127.0.0.1:1"}, args...)...)
		if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), "-health") {
			t.Errorf("%v: error %v", args, err)
		}
	}
}
