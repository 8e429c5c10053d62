package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestDemo runs the demo: calls spread over the servers the health checks
// find serving, and without any a call gets UNAVAILABLE from the proxy.
func TestDemo(t *testing.T) {
	testutil.CheckLeaks(t)
	var out buffer
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := run(ctx, config{listen: "127.0.0.1:0", interval: 50 * time.Millisecond, demo: true}, &out); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the demo did not end; output:\n%s", out.String())
	}
	// The Hello replies of each phase, between the "stops serving" lines.
	var phases [][]string
	phase := []string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		switch {
		case strings.HasSuffix(line, "stops serving demo.Greeter"):
			phases = append(phases, phase)
			phase = []string{}
		case strings.HasPrefix(line, "Hello: "):
			phase = append(phase, strings.TrimPrefix(line, "Hello: "))
		case strings.HasPrefix(line, "demo: "):
			t.Errorf("demo failed: %s", line)
		}
	}
	phases = append(phases, phase)
	for _, p := range phases {
		slices.Sort(p)
	}
	want := [][]string{
		{"hello demo from backend-1", "hello demo from backend-1", "hello demo from backend-2", "hello demo from backend-2"},
		{"hello demo from backend-1", "hello demo from backend-1"},
		{"Unavailable: Service Unavailable"},
	}
	if !slices.EqualFunc(phases, want, slices.Equal) {
		t.Errorf("replies by phase:\n%q\nwant\n%q\noutput:\n%s", phases, want, out.String())
	}
}
