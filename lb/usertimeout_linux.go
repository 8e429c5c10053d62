package lb

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT on the TCP connection under c
// (through TLS and other wrappers that expose it): the kernel aborts the
// connection when data it holds for the peer stays unacknowledged, or
// unsent behind a closed window, for d. Zero turns it off. Connections
// that are not TCP are left alone.
func setUserTimeout(c net.Conn, d time.Duration) {
	tc := connUnder[*net.TCPConn](c)
	if tc == nil {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	ms := int(min(d.Milliseconds(), 1<<31-1))
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
	})
}
