//go:build !linux

package testutil

import (
	"net"
	"testing"
)

// closedAddr returns the address of a listener it closed at once. The port
// may be reused by a later listener; on Linux a bound, non-listening socket
// reserves it instead.
func closedAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
