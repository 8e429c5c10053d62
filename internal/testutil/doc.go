// Package testutil holds helpers shared by the module's tests: a
// runtime-generated test PKI, loopback HTTP and TCP servers, and goroutine
// leak checks.
//
// It is a normal package so that tests of every package can import it, but
// only _test.go files may do so. It depends on the standard library only.
//
// Every server listens on 127.0.0.1 and is closed by a tb.Cleanup. Leak
// checks compare goroutine IDs against a snapshot, so call CheckLeaks first
// in a test: cleanups run in reverse order, and the check then runs after the
// servers and clients registered later have been closed.
package testutil
