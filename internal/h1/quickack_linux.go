package h1

import (
	"crypto/tls"
	"net"
	"syscall"
)

// delayAcks turns quick ACKs off on ln's socket when it is a TCP listener
// (see Server.QuickAck); accepted connections inherit the setting. It
// reports whether the socket took it: an MPTCP listener (Go's default
// since 1.24) refuses TCP_QUICKACK with ENOPROTOOPT, and a listener that
// hides its socket cannot be reached (then delayConnAcks sets each
// connection).
func delayAcks(ln net.Listener) bool {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
	}); err != nil {
		return false
	}
	return serr == nil
}

// delayConnAcks turns quick ACKs off on one accepted connection's socket
// (under TLS too), before its first read. A socket that refuses it (an
// MPTCP connection) keeps them.
func delayConnAcks(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
	})
}
