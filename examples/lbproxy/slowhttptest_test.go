package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestLBProxySlowHTTPTest runs slowhttptest's slow-body (-B) and
// slow-header (-H) attacks against lbproxy with short timeouts: every
// attacking connection must be closed before the test's time limit.
// Without the bounds they stay open to the end ("Hit test time limit").
func TestLBProxySlowHTTPTest(t *testing.T) {
	bin := testutil.LookBinary(t, "slowhttptest", "slowhttptest")
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	cfg := withFlags(t, "-backends", b.Addr, "-request-timeout", "2s", "-min-body-rate-grace", "1s")
	addr := start(t, cfg)
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	for _, attack := range []string{"-B", "-H"} {
		t.Run(attack, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// 50 connections opened at once, a follow-up every second, for
			// at most 8 s.
			out, err := exec.CommandContext(ctx, bin, attack, "-c", "50", "-r", "50", "-i", "1", "-l", "8",
				"-u", "http://"+addr+"/").CombinedOutput()
			text := ansi.ReplaceAllString(string(out), "")
			if err != nil {
				t.Fatalf("slowhttptest: %v\n%s", err, text)
			}
			if !strings.Contains(text, "No open connections left") {
				t.Errorf("attacking connections left open:\n%s", text)
			}
		})
	}
}
