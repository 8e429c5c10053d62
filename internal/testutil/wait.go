package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 5 ms until it holds, and fails the test if
// it does not within 5 s; what names the condition in the failure.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWithin(tb, 5*time.Second, what, cond)
}

// EventuallyWithin is Eventually with a bound of its own, for a condition
// whose every check may itself take seconds (a dial with a timeout).
func EventuallyWithin(tb testing.TB, bound time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
