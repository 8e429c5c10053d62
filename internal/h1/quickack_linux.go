package h1

import (
	"crypto/tls"
	"net"
	"syscall"
)

// delayAcks turns quick ACKs off on ln's socket when it is a TCP listener
// (see Server.QuickAck); accepted connections inherit the setting. It
// reports whether the listener's connections need nothing more: false
// when an MPTCP listener (Go's default since 1.24) refused TCP_QUICKACK
// with ENOPROTOOPT, or a wrapper hides the socket (then delayConnAcks sets
// each TCP connection); true for a Unix socket's.
func delayAcks(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		_, unix := ln.(*net.UnixListener)
		return unix // nothing to set on a Unix socket's connections
	}
	return quickAckOff(tl)
}

// delayConnAcks turns quick ACKs off on one accepted connection's socket
// (under TLS too), before its first read. A socket that refuses it (an
// MPTCP connection) keeps them.
func delayConnAcks(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		quickAckOff(tcp)
	}
}

// quickAckOff sets TCP_QUICKACK to 0 on sc's socket and reports whether
// the socket took it.
func quickAckOff(sc syscall.Conn) bool {
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
