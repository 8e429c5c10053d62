//go:build unix

package main

import (
	"fmt"
	"net/netip"
	"syscall"
)

// bindProbe binds the socket rc of a check connection on network ("tcp4"
// or "tcp6") to address's host and a port of the kernel's choosing, before
// it connects, and returns that source address: connecting to one of its
// own addresses, a host uses that address as the source. A zoned address
// is not bound (invalid result).
func bindProbe(network, address string, rc syscall.RawConn) (netip.AddrPort, error) {
	to, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("binding the check's socket: %w", err)
	}
	ip := to.Addr()
	if ip.Zone() != "" {
		return netip.AddrPort{}, nil
	}
	var sa syscall.Sockaddr
	if network == "tcp4" {
		sa = &syscall.SockaddrInet4{Addr: ip.Unmap().As4()}
	} else {
		sa = &syscall.SockaddrInet6{Addr: ip.As16()}
	}
	var from netip.AddrPort
	cerr := rc.Control(func(fd uintptr) {
		if err = syscall.Bind(int(fd), sa); err != nil {
			return
		}
		var got syscall.Sockaddr
		if got, err = syscall.Getsockname(int(fd)); err != nil {
			return
		}
		switch a := got.(type) {
		case *syscall.SockaddrInet4:
			from = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
		case *syscall.SockaddrInet6:
			from = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("binding the check's socket: %w", err)
	}
	return from, nil
}
