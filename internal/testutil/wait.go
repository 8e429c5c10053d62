package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 5 ms until it holds, and fails the test if
// it does not within 5 s; what names the condition in the failure.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
