// Package gopool runs short tasks on goroutines that outlive them, so that
// a task finds a stack the tasks before it have grown already.
//
// A goroutine starts with a small stack (a few kilobytes, the runtime's
// running average) and grows it by copying it to one twice as large each
// time a call goes deeper than it holds. Serving a proxied request goes
// deep (the HTTP/2 server, the handler, the proxy, the engine to the
// servers, the allocator's slow path), so a goroutine per connection or
// per stream pays for one to three such copies, each of which walks every
// frame to adjust its pointers: about a tenth of the proxy's CPU per
// request under an HTTP/2 load, and 4–5% under connections that carry one
// request each. A worker of the pool keeps its grown stack from one task
// to the next. (The runtime halves an idle goroutine's stack at a garbage
// collection when it uses less than a quarter of it, so a worker waiting
// between collections regrows at most one step.)
//
// Idle workers wait on a stack: the most recently idle is reused first, as
// its stack is the likeliest to be grown and in cache, and those at the
// bottom are retired once they have been idle for one to two sweep periods
// of a second, so that a burst leaves no stacks behind: an idle
// proxy holds no workers. The pool starts a worker whenever none is idle;
// it bounds nothing (the callers bound their connections and streams).
//
// Tasks run as on a goroutine of their own: one that panics crashes the
// program, as it would there (callers recover what they must), and one
// that calls runtime.Goexit ends its worker, which the pool then forgets.
// What a task leaves on its goroutine stays for the next: pprof labels it
// set, and a runtime.LockOSThread it did not undo (which on a goroutine
// of its own would end the thread with it); tasks must not leave either.
//
// HAProxy and Envoy run every connection on a few threads and have no such
// cost; fasthttp's worker pool keeps goroutines for the same reason. This
// pool is smaller: one process-wide LIFO list under a mutex, whose critical
// sections are a slice push or pop.
package gopool

import (
	"sync"
	"time"
)

// Task is the work given to Go. Pointer types and Func implement it
// without an allocation at the call.
type Task interface{ Run() }

// Func adapts a function to Task.
type Func func()

// Run calls f.
func (f Func) Run() { f() }

// sweepPeriod is the period of the sweep that retires idle workers: a
// worker idle through a whole period ends at the sweep after it, so one
// ends after one to two periods.
var sweepPeriod = time.Second

// worker is a goroutine of the pool; it waits on wake while idle. A nil
// task retires it.
type worker struct {
	wake  chan Task // capacity 1: Go never waits for the worker
	epoch uint64    // the pool's epoch when it went idle
}

// pool is the process's pool of workers.
var pool struct {
	mu       sync.Mutex
	idle     []*worker // the oldest idle first
	epoch    uint64    // counts sweeps
	sweeping bool      // the sweep timer is set
	timer    *time.Timer
	started  uint64 // workers started, for tests
}

// Go runs t on an idle worker, or on a new goroutine that becomes one.
// It never blocks.
func Go(t Task) {
	pool.mu.Lock()
	if n := len(pool.idle); n > 0 {
		w := pool.idle[n-1]
		pool.idle[n-1] = nil
		pool.idle = pool.idle[:n-1]
		pool.mu.Unlock()
		w.wake <- t
		return
	}
	pool.started++
	pool.mu.Unlock()
	w := &worker{wake: make(chan Task, 1)}
	go w.run(t)
}

// run runs tasks until the worker is retired.
func (w *worker) run(t Task) {
	for t != nil {
		t.Run()
		t = w.park()
	}
}

// park makes w idle and waits for its next task: nil once it is retired.
// Goroutine-leak checks recognise idle workers by this function.
func (w *worker) park() Task {
	pool.mu.Lock()
	w.epoch = pool.epoch
	pool.idle = append(pool.idle, w)
	if !pool.sweeping {
		pool.sweeping = true
		if pool.timer == nil {
			pool.timer = time.AfterFunc(sweepPeriod, sweep)
		} else {
			pool.timer.Reset(sweepPeriod)
		}
	}
	pool.mu.Unlock()
	return <-w.wake
}

// sweep retires the workers that were idle through the whole last period,
// and sets itself again while any worker is idle.
func sweep() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	pool.epoch++
	// Idle workers are in the order they went idle, so those to retire
	// are a prefix: idle since before the previous sweep.
	n := 0
	for n < len(pool.idle) && pool.epoch-pool.idle[n].epoch >= 2 {
		pool.idle[n].wake <- nil // an idle worker's channel is empty
		n++
	}
	rest := copy(pool.idle, pool.idle[n:])
	clear(pool.idle[rest:])
	pool.idle = pool.idle[:rest]
	if rest == 0 {
		pool.sweeping = false
		if cap(pool.idle) > 64 {
			pool.idle = nil // a burst's list goes too
		}
		return
	}
	pool.timer.Reset(sweepPeriod)
}
