//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// notHeld is an address of TEST-NET-1 (RFC 5737), which no interface of
// the test machine holds.
const notHeld = "192.0.2.1"

// TestFreebindListen checks that -freebind makes lbproxy serve on an
// address this host does not hold, where it fails without the flag.
// TestSelfCheckWaitsForTheAddress checks its /healthz.
func TestFreebindListen(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")

	cfg := defaultConfig()
	cfg.backends, cfg.listen = b.Addr, notHeld+":0"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := run(ctx, cfg, io.Discard); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("without -freebind, lbproxy on %s returned %v, want EADDRNOTAVAIL", cfg.listen, err)
	}

	cfg = withFlags(t, "-freebind", "-backends", b.Addr, "-listen", notHeld+":0", "-admin", "127.0.0.1:0", "-grace", "1s")
	ctx, cancel = context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var admin, listen string
	sc := bufio.NewScanner(pr)
	for (admin == "" || listen == "") && sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "admin endpoints on "); ok {
			admin = a
		}
		if a, ok := strings.CutPrefix(line, "lbproxy: http on "); ok {
			listen = a
		}
	}
	go io.Copy(io.Discard, pr)
	if admin == "" || listen == "" {
		t.Fatalf("lbproxy did not start with -freebind (admin %q, listen %q)", admin, listen)
	}
	if host, _, _ := net.SplitHostPort(listen); host != notHeld {
		t.Fatalf("lbproxy listens on %s, want %s", listen, notHeld)
	}
}

// TestSelfCheckWaitsForTheAddress checks that the accept self-check of a
// listener bound with -freebind to an address this host does not hold
// passes (the standby of a pair is healthy), while the same check on a
// held address that accepts nothing fails.
func TestSelfCheckWaitsForTheAddress(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	lc := net.ListenConfig{Control: setFreebind}
	for _, tc := range []struct {
		addr     string
		held     bool
		failure  bool // the check must fail: nothing accepts
		freebind bool
	}{
		{addr: notHeld + ":0", held: false, failure: false, freebind: true},
		{addr: "127.0.0.1:0", held: true, failure: true, freebind: true},
		{addr: "127.0.0.1:0", held: true, failure: true},
	} {
		cfg := net.ListenConfig{}
		if tc.freebind {
			cfg = lc
		}
		ln, err := cfg.Listen(context.Background(), "tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		// Nothing calls Accept: on a held address the check's connection
		// is never accepted.
		probe := &acceptProbe{Listener: ln}
		if got := probe.held(); got != tc.held {
			t.Errorf("%s: held() = %v, want %v", ln.Addr(), got, tc.held)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &selfCheck{ctx: ctx, accept: probe, interval: 50 * time.Millisecond, logger: logger}
		c.check(ctx)
		cancel()
		var failure string
		if f := c.failure.Load(); f != nil {
			failure = *f
		}
		if got := failure != ""; got != tc.failure {
			t.Errorf("%s (freebind %v): check failure %q, want failing %v", ln.Addr(), tc.freebind, failure, tc.failure)
		}
		if failure != "" && !strings.HasPrefix(failure, "accept: ") {
			t.Errorf("%s: failure %q, want an accept failure", ln.Addr(), failure)
		}
	}
}
