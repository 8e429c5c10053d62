package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// serveThenStop runs lbproxy with cfg, calls traffic with its address once
// it serves, then stops it and waits until run has returned (its access log
// flushed and closed).
func serveThenStop(t *testing.T, cfg *config, traffic func(addr string)) {
	t.Helper()
	cfg.listen = "127.0.0.1:0"
	cfg.grace = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	addr := ""
	for addr == "" && sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), " on "); ok && strings.HasPrefix(sc.Text(), "lbproxy:") {
			addr = a
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatalf("lbproxy did not start: %v", <-done)
	}
	traffic(addr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lbproxy did not stop")
	}
}

// getN sends n GET requests to addr over one keep-alive connection.
func getN(t *testing.T, addr string, n int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for range n {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestAccessLogHalog: -access-log haproxy to a file writes one line per
// request that HAProxy's halog counts, per server.
func TestAccessLogHalog(t *testing.T) {
	testutil.CheckLeaks(t)
	halog := testutil.LookBinary(t, "halog", "haproxy")
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	path := filepath.Join(t.TempDir(), "access.log")
	cfg := withFlags(t, "-backends", a.Addr+","+b.Addr, "-access-log", "haproxy", "-access-log-file", path)
	serveThenStop(t, cfg, func(addr string) { getN(t, addr, 10) })

	halogOut := func(arg string) string {
		t.Helper()
		in, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd := exec.Command(halog, "-s", "-4", arg) // -s -4: no syslog header
		cmd.Stdin = in
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("halog %s: %v: %s", arg, err, errb.String())
		}
		return out.String()
	}
	if got := strings.TrimSpace(halogOut("-c")); got != "10" {
		t.Errorf("halog -c = %q, want 10", got)
	}
	srv := halogOut("-srv")
	for _, name := range []string{"backend/s1", "backend/s2"} {
		if !regexp.MustCompile(`(?m)^` + name + ` \d+ \d+ \d+ \d+ \d+ \d+ 5 `).MatchString(srv) {
			t.Errorf("halog -srv: %s did not serve 5 requests:\n%s", name, srv)
		}
	}
	if st := halogOut("-st"); !regexp.MustCompile(`(?m)^200 10$`).MatchString(st) {
		t.Errorf("halog -st:\n%s", st)
	}
}

// TestAccessLogJSON: -access-log json writes one JSON object per request
// and per TCP session.
func TestAccessLogJSON(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, mode := range []string{"http", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.json")
			var backend string
			if mode == "http" {
				backend = testutil.HTTPBackend(t, "a").Addr
			} else {
				backend = testutil.EchoServer(t).Addr
			}
			cfg := withFlags(t, "-mode", mode, "-backends", backend, "-access-log", "json", "-access-log-file", path)
			serveThenStop(t, cfg, func(addr string) {
				if mode == "http" {
					getN(t, addr, 3)
					return
				}
				for range 3 {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					c.SetDeadline(time.Now().Add(5 * time.Second))
					io.WriteString(c, "ping")
					c.(*net.TCPConn).CloseWrite()
					io.ReadAll(c)
					c.Close()
				}
			})
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d records, want 3:\n%s", len(lines), data)
			}
			for _, l := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("%v: %s", err, l)
				}
				if rec["backend"] != "backend" || rec["server"] != "s1" {
					t.Errorf("record %s: want backend \"backend\", server \"s1\"", l)
				}
			}
		})
	}
}

// TestAccessLogSyslog: -access-log-syslog sends one RFC 5424 message per
// request from facility local0 at level info, as HAProxy does.
func TestAccessLogSyslog(t *testing.T) {
	testutil.CheckLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a := testutil.HTTPBackend(t, "a")
	cfg := withFlags(t, "-backends", a.Addr, "-access-log", "haproxy", "-access-log-syslog", "udp://"+pc.LocalAddr().String())
	serveThenStop(t, cfg, func(addr string) { getN(t, addr, 2) })
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	for i := range 2 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, "<134>1 ") || !strings.Contains(msg, " lbproxy ") || !strings.Contains(msg, " frontend backend/s1 ") {
			t.Errorf("datagram %d = %q, want RFC 5424 from local0.info with the request's line", i, msg)
		}
	}
}
