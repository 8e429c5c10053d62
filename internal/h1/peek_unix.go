//go:build unix

package h1

import (
	"net"
	"syscall"
)

// peekState is what the liveness peek of a connection needs, made once per
// connection so that each peek allocates nothing.
type peekState struct {
	raw   syscall.RawConn       // nil when the connection has no socket
	fn    func(fd uintptr) bool // the peek itself, for raw.Read
	alive bool                  // fn's result
	buf   [1]byte
}

// alive reports whether an idle connection is still open and silent, with
// a non-blocking peek at its socket (one recvfrom with MSG_PEEK): a
// connection the server closed (end of stream, reset) or on which it sent
// something unasked (a 408, a TLS alert) is not reusable. A connection
// without a socket is assumed alive.
func (pc *serverConn) alive() bool {
	p := &pc.peek
	if p.fn == nil {
		if p.raw = pc.raw; p.raw == nil { // the socket, when not a *net.TCPConn of its own
			if sc := syscallConn(pc.conn); sc != nil {
				p.raw, _ = sc.SyscallConn()
			}
		}
		p.fn = func(fd uintptr) bool {
			_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			// EAGAIN: nothing to read, the connection is open. Anything
			// else (data, end of stream with no error, an error) makes it
			// unusable.
			p.alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
			return true // never wait for readability
		}
	}
	if p.raw == nil {
		return true
	}
	p.alive = false
	if err := p.raw.Read(p.fn); err != nil {
		return false
	}
	return p.alive
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
