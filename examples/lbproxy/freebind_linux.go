//go:build linux

package main

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// freebindSupported reports whether -freebind can be honoured here.
const freebindSupported = true

// setFreebind is a net.ListenConfig Control function (-freebind): it sets
// IP_FREEBIND (IPV6_FREEBIND on IPv6 sockets) so that the socket binds an
// address this host does not hold yet, such as a virtual IP that
// keepalived moves between two load balancers. The socket receives that
// address's traffic once the address is assigned to an interface.
func setFreebind(network, address string, rc syscall.RawConn) error {
	level, opt := unix.IPPROTO_IP, unix.IP_FREEBIND
	switch network {
	case "tcp6", "udp6":
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return fmt.Errorf("lbproxy: -freebind: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("lbproxy: -freebind on %s %s: %w", network, address, serr)
	}
	return nil
}
