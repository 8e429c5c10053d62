//go:build unix

package lb

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle connection is still open and silent,
// with a non-blocking peek at its socket: a connection the server closed
// (end of stream, reset) or on which it sent something unasked (a 408, a
// TLS alert) is not reusable. A connection without a file descriptor is
// assumed alive.
func connAlive(c net.Conn) bool {
	sc := syscallConn(c)
	if sc == nil {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, the connection is open. Anything else
		// (data, end of stream with no error, an error) makes it unusable.
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
		return true
	})
	return alive && err == nil
}

// syscallConn finds the socket under c, through TLS and other wrappers
// that expose NetConn; nil when there is none.
func syscallConn(c net.Conn) syscall.Conn {
	for range 8 {
		if sc, ok := c.(syscall.Conn); ok {
			return sc
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
	return nil
}
