package testutil

import (
	"sync"
	"testing"
	"time"
)

// Records keeps the values handed to Add, from any goroutine, for a test to
// take in order with Next: the records a hook receives, say. Add blocks once
// capacity values wait, so size it above what a test sends.
type Records[T any] struct {
	mu   sync.Mutex
	vals []T
	ch   chan struct{}
}

// NewRecords returns Records that hold up to capacity values not yet taken.
func NewRecords[T any](capacity int) *Records[T] {
	return &Records[T]{ch: make(chan struct{}, capacity)}
}

// Add keeps v.
func (r *Records[T]) Add(v T) {
	r.mu.Lock()
	r.vals = append(r.vals, v)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// Next returns the oldest value not taken yet, waiting up to 10 seconds for
// one; it fails tb when none comes.
func (r *Records[T]) Next(tb testing.TB) T {
	tb.Helper()
	select {
	case <-r.ch:
	case <-time.After(10 * time.Second):
		tb.Fatal("testutil: no record within 10s")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.vals[0]
	r.vals = r.vals[1:]
	return v
}
