package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

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

func TestStateChangesShownLive(t *testing.T) {
	testutil.CheckLeaks(t)
	var out buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := config{listen: "127.0.0.1:0", interval: 100 * time.Millisecond, cycle: 700 * time.Millisecond, cycles: 1}
	if err := run(ctx, cfg, &out); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("run did not end after its cycle")
	}
	// Drop timestamps and reasons (they carry ports).
	stamp := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} `)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, "load balancer on") {
			continue
		}
		line = stamp.ReplaceAllString(line, "")
		line, _, _ = strings.Cut(line, " (")
		got = append(got, line)
	}
	want := []string{
		"backend-1: down -> up", "backend-2: down -> up",
		"stopping backend-2",
		"backend-2: up -> going down", "backend-2: going down -> down",
		"restarting backend-2",
		"backend-2: down -> going up", "backend-2: going up -> up",
	}
	// The two initial verdicts may come in either order.
	if len(got) == len(want) && got[0] == want[1] && got[1] == want[0] {
		got[0], got[1] = got[1], got[0]
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant (without times and reasons):\n%s", out.String(), strings.Join(want, "\n"))
	}
	if !strings.Contains(out.String(), "going down -> down (http: connect:") {
		t.Fatalf("no reason on the way down:\n%s", out.String())
	}
}
