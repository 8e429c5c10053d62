package testutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeTB records what the leak check reports instead of failing the test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// leakyWorker blocks until stop is closed.
func leakyWorker(stop <-chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-stop
}

func TestCheckLeaksReportsLeakedGoroutine(t *testing.T) {
	fake := &fakeTB{TB: t}
	checkLeaks(fake, 200*time.Millisecond)

	stop := make(chan struct{})
	var started, ended sync.WaitGroup
	started.Add(1)
	ended.Add(1)
	go func() {
		defer ended.Done()
		leakyWorker(stop, &started)
	}()
	started.Wait()

	start := time.Now()
	fake.runCleanups()
	close(stop)
	ended.Wait()

	if len(fake.errors) != 1 {
		t.Fatalf("got %d reports, want 1: %q", len(fake.errors), fake.errors)
	}
	if !strings.Contains(fake.errors[0], "leakyWorker") || !strings.Contains(fake.errors[0], "1 leaked goroutine") {
		t.Fatalf("report does not show the leaked goroutine:\n%s", fake.errors[0])
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("reported after %v, before the grace period", d)
	}
}

// TestCheckLeaksWaitsForEndingGoroutines runs in a synctest bubble: the
// goroutine ends 100ms after the check starts on the bubble's clock, which
// moves only when every goroutine is blocked, so the check always finds it
// running first and must wait for it.
func TestCheckLeaksWaitsForEndingGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeTB{TB: t}
		checkLeaks(fake, 2*time.Second)
		start := time.Now()
		var ended time.Time
		done := make(chan struct{})
		go func() {
			time.Sleep(100 * time.Millisecond) // the late end under test
			ended = time.Now()
			close(done)
		}()
		fake.runCleanups()
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("check returned after %v, before the goroutine ended", d)
		}
		<-done
		if ended.Sub(start) != 100*time.Millisecond {
			t.Fatalf("goroutine ended after %v", ended.Sub(start))
		}
		if len(fake.errors) != 0 {
			t.Fatalf("unexpected reports: %q", fake.errors)
		}
	})
}

func TestCheckLeaksIgnoresSnapshot(t *testing.T) {
	stop := make(chan struct{})
	var started sync.WaitGroup
	started.Add(1)
	go leakyWorker(stop, &started)
	started.Wait()
	defer close(stop)

	fake := &fakeTB{TB: t}
	checkLeaks(fake, 100*time.Millisecond)
	fake.runCleanups()
	if len(fake.errors) != 0 {
		t.Fatalf("goroutine of the snapshot reported: %q", fake.errors)
	}
}

func TestParseStacks(t *testing.T) {
	dump := "goroutine 7 [running]:\nmain.work(0x1)\n\t/src/main.go:10 +0x1d\ncreated by main.main in goroutine 1\n\t/src/main.go:5 +0x25\n\n" +
		"goroutine 12 [chan receive, 3 minutes]:\npkg.(*T).loop(...)\n\t/src/pkg.go:3\n"
	gs := parseStacks([]byte(dump))
	if len(gs) != 2 || gs[0].id != 7 || gs[0].top != "main.work" || gs[1].id != 12 || gs[1].top != "pkg.(*T).loop" {
		t.Fatalf("parsed %+v", gs)
	}
	if currentID() == 0 {
		t.Fatal("no current goroutine ID")
	}
}
