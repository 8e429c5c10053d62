package testutil

import (
	"net"
	"syscall"
	"testing"
)

// closedAddr reserves a loopback port with a TCP socket that is bound but
// never listens: connections to it are refused, and no other listener can
// take the port until the test ends (a closed listener's port can be handed
// to the very next listener, turning a "dead" server into a live one).
func closedAddr(tb testing.TB) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("testutil: socket: %v", err)
	}
	tb.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatalf("testutil: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatalf("testutil: getsockname: %v", err)
	}
	return (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
}
