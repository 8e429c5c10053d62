package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// defaultConfig returns the config of a command line without flags.
func defaultConfig() *config {
	return newConfig(flag.NewFlagSet("lbproxy", flag.ContinueOnError))
}

// withFlags returns the config of a command line with args.
func withFlags(t *testing.T, args ...string) *config {
	t.Helper()
	fs := flag.NewFlagSet("lbproxy", flag.ContinueOnError)
	cfg := newConfig(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// refused runs lbproxy with cfg, which it must refuse before serving, and
// returns run's error. A run that serves instead fails the test when the
// timeout ends it.
func refused(t *testing.T, cfg *config) error {
	t.Helper()
	cfg.listen = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, cfg, &out)
	if strings.Contains(out.String(), "lbproxy: "+cfg.mode+" on ") {
		t.Errorf("lbproxy served (and then returned %v), want the configuration refused", err)
	}
	return err
}

// start runs lbproxy with cfg on a free loopback port and returns its address.
func start(t *testing.T, cfg *config) string {
	t.Helper()
	addr, _ := startOut(t, cfg)
	return addr
}

// startOut is start, also returning what lbproxy printed before it served.
func startOut(t *testing.T, cfg *config) (string, []string) {
	t.Helper()
	cfg.listen = "127.0.0.1:0"
	if cfg.grace == 0 {
		cfg.grace = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if _, addr, ok := strings.Cut(sc.Text(), " on "); ok && strings.HasPrefix(sc.Text(), "lbproxy:") {
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			return addr, lines
		}
		lines = append(lines, sc.Text())
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-done)
	return "", nil
}

func TestLBProxyHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	cfg := defaultConfig()
	cfg.backends = a.Addr + "," + b.Addr
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
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
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("spread %v, want 5 each", seen)
	}
}

func TestLBProxyTCP(t *testing.T) {
	testutil.CheckLeaks(t)
	e := testutil.EchoServer(t)
	cfg := defaultConfig()
	cfg.mode, cfg.backends, cfg.algorithm = "tcp", e.Addr, "leastconn"
	addr := start(t, cfg)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestLBProxyRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-mode", "gopher"}, "-mode"},
		{[]string{"-backends", "nohostport"}, "nohostport"},
		{[]string{"-backends", " , "}, "no backend"},
		{[]string{"-algorithm", "bogus"}, "bogus"},
		{[]string{"-mode", "https", "-tls-profile", "ancient"}, "ancient"},
		{[]string{"-access-log", "common"}, "-access-log"},
		{[]string{"-access-log-file", "/tmp/x.log"}, "need -access-log"},
		{[]string{"-access-log", "json", "-access-log-syslog", "127.0.0.1:514"}, "udp://HOST:PORT"},
		{[]string{"-access-log", "json", "-access-log-syslog", "udp://127.0.0.1:514", "-access-log-syslog-format", "rfc9999"}, "rfc9999"},
		{[]string{"-access-log", "json", "-access-log-file", "/tmp/x.log", "-access-log-syslog", "udp://127.0.0.1:514"}, "exclude"},
	} {
		cfg := withFlags(t, append([]string{"-backends", "127.0.0.1:1"}, tt.args...)...)
		if err := refused(t, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: run = %v, want an error about %q", tt.args, err, tt.want)
		}
	}
}

// TestLBProxyFlagDefaults: a command line without flags is the documented
// default configuration.
func TestLBProxyFlagDefaults(t *testing.T) {
	cfg := defaultConfig()
	if cfg.mode != "http" || cfg.listen != "127.0.0.1:8080" || cfg.algorithm != "roundrobin" ||
		cfg.grace != 10*time.Second || cfg.gcPercent != 400 || cfg.proxyProtocol != "none" ||
		cfg.sticky != "none" || cfg.tlsProfile != "intermediate" || cfg.certReload != 5*time.Second {
		t.Errorf("defaults %+v", cfg)
	}
}

// TestLBProxyDropUnderscoreHeaders checks that -drop-underscore-headers
// drops every header name with "_", where the default drops only aliases
// of framing and forwarding fields.
func TestLBProxyDropUnderscoreHeaders(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, strict := range []bool{false, true} {
		be := testutil.HTTPBackend(t, "a")
		var cfg *config
		if strict {
			cfg = withFlags(t, "-drop-underscore-headers")
		} else {
			cfg = defaultConfig()
		}
		cfg.backends = be.Addr
		addr := start(t, cfg)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
		req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header["X_Custom"] = []string{"v"}
		req.Header["X_Forwarded_For"] = []string{"10.9.9.9"}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.CloseIdleConnections()
		h := be.LastHeader()
		if h.Get("X_Forwarded_For") != "" {
			t.Errorf("strict %v: X_Forwarded_For forwarded", strict)
		}
		if ok := h.Get("X_Custom") != ""; ok == strict {
			t.Errorf("strict %v: X_Custom forwarded %v", strict, ok)
		}
	}
}
