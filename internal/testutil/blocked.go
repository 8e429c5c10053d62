package testutil

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// WaitBlocked waits until some goroutine is blocked on network I/O (its
// state "IO wait") with fn among its callers, such as
// "h1.(*body).Read", and fails the test if none is within 5 s. It lets a
// test act on a read that is known to be blocked, where a sleep would only
// make that likely.
func WaitBlocked(tb testing.TB, fn string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
			header, _, _ := bytes.Cut(g, []byte("\n"))
			if bytes.Contains(header, []byte("[IO wait")) && bytes.Contains(g, []byte(fn+"(")) {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for a goroutine blocked on I/O in %s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}
