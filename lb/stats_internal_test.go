package lb

import (
	"testing"
	"time"
)

func TestRateCounterInterpolates(t *testing.T) {
	var r rateCounter
	t0 := time.Unix(1_000_000, 0)
	for range 10 {
		r.inc(t0.Add(100 * time.Millisecond))
	}
	if got := r.read(t0.Add(900 * time.Millisecond)); got != 10 {
		t.Fatalf("rate within the first second = %d, want 10", got)
	}
	// A quarter into the next second, three quarters of the previous
	// second's 10 still count.
	for range 4 {
		r.inc(t0.Add(1250 * time.Millisecond))
	}
	if got := r.read(t0.Add(1250 * time.Millisecond)); got != 4+7 {
		t.Fatalf("rate a quarter into the next second = %d, want 11 (4 + 7.5)", got)
	}
	if got := r.read(t0.Add(2500 * time.Millisecond)); got != 2 {
		t.Fatalf("rate half into the second after = %d, want 2 (half of 4)", got)
	}
	if got := r.read(t0.Add(5 * time.Second)); got != 0 {
		t.Fatalf("rate after a quiet while = %d, want 0", got)
	}
	if m := r.max.Load(); m != 11 {
		t.Fatalf("max rate = %d, want 11", m)
	}
	// After a gap, the old seconds count for nothing.
	r.inc(t0.Add(10 * time.Second))
	if got := r.read(t0.Add(10*time.Second + 500*time.Millisecond)); got != 1 {
		t.Fatalf("rate after a gap = %d, want 1", got)
	}
}

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]int{100: class1xx, 204: class2xx, 302: class3xx, 404: class4xx, 599: class5xx, 600: classOther, 0: classOther, 99: classOther} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d) = %d, want %d", code, got, want)
		}
	}
}
