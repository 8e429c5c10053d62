package gopool

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// stats returns the workers idle now and those started so far.
func stats() (idle int, started uint64) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return len(pool.idle), pool.started
}

// waitIdle waits until n workers are idle.
func waitIdle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		idle, _ := stats()
		if idle == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers idle, want %d", idle, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGoReusesIdleWorker(t *testing.T) {
	waitIdle(t, 0)
	_, start := stats()
	for i := range 100 {
		done := make(chan int)
		Go(Func(func() { done <- i }))
		if got := <-done; got != i {
			t.Fatalf("task %d ran as %d", i, got)
		}
		waitIdle(t, 1)
	}
	if _, n := stats(); n-start != 1 {
		t.Fatalf("%d workers started for 100 tasks run one after another, want 1", n-start)
	}
}

func TestGoConcurrent(t *testing.T) {
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[int]bool)
	release := make(chan struct{})
	wg.Add(n)
	for i := range n {
		Go(Func(func() {
			defer wg.Done()
			<-release // all n run at once: n workers
			mu.Lock()
			seen[i] = true
			mu.Unlock()
		}))
	}
	close(release)
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d tasks ran, want %d", len(seen), n)
	}
	waitIdle(t, n)
	// A second round finds them all idle: no new worker.
	_, before := stats()
	wg.Add(n)
	for range n {
		Go(Func(wg.Done))
	}
	wg.Wait()
	if _, after := stats(); after != before {
		t.Fatalf("%d workers started with %d idle", after-before, n)
	}
}

func TestIdleWorkersRetire(t *testing.T) {
	setPeriod := func(d time.Duration) {
		pool.mu.Lock() // read under it
		sweepPeriod = d
		pool.mu.Unlock()
	}
	setPeriod(20 * time.Millisecond)
	t.Cleanup(func() { setPeriod(time.Second) })
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Add(10)
	for range 10 {
		Go(Func(func() { defer wg.Done(); <-release }))
	}
	close(release)
	wg.Wait()
	waitIdle(t, 0) // within two periods (of whichever timer was set)
	deadline := time.Now().Add(5 * time.Second)
	for workers() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after their retirement", workers())
		}
		time.Sleep(time.Millisecond)
	}
	// The pool works on after a retirement.
	done := make(chan struct{})
	Go(Func(func() { close(done) }))
	<-done
}

func TestGoexitEndsWorker(t *testing.T) {
	waitIdle(t, 0)
	done := make(chan struct{})
	Go(Func(func() {
		defer close(done)
		runtime.Goexit()
	}))
	<-done
	time.Sleep(10 * time.Millisecond)
	if idle, _ := stats(); idle != 0 {
		t.Fatalf("a worker whose task called Goexit is idle")
	}
}

// workers counts the goroutines of the pool, idle or running a task.
func workers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "gopool.(*worker).run(")
}

//go:noinline
func deep(n int) byte {
	var pad [512]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%len(pad)]
}

// The pool against a goroutine per task, for a task whose stack goes to
// about 24 KiB (a proxied request goes deeper than a new goroutine's).
func BenchmarkDeepTask(b *testing.B) {
	b.Run("pool", func(b *testing.B) {
		b.ReportAllocs()
		done := make(chan struct{}, 1)
		task := Func(func() { deep(40); done <- struct{}{} })
		for b.Loop() {
			Go(task)
			<-done
		}
	})
	b.Run("goroutine", func(b *testing.B) {
		b.ReportAllocs()
		done := make(chan struct{}, 1)
		for b.Loop() {
			go func() { deep(40); done <- struct{}{} }()
			<-done
		}
	})
}
