package testutil

import (
	"errors"
	"syscall"
)

// KeepAlive is a TCP socket's keep-alive setting as the kernel holds it:
// SO_KEEPALIVE, and TCP_KEEPIDLE and TCP_KEEPINTVL in seconds and
// TCP_KEEPCNT in probes (the kernel's defaults while On is false).
type KeepAlive struct {
	On                    bool
	Idle, Interval, Count int
}

// ReadKeepAlive reads the keep-alive setting of c's socket.
func ReadKeepAlive(c syscall.Conn) (KeepAlive, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return KeepAlive{}, err
	}
	var ka KeepAlive
	var kerr error
	if err := rc.Control(func(fd uintptr) { ka, kerr = KeepAliveOfFd(int(fd)) }); err != nil {
		return KeepAlive{}, err
	}
	return ka, kerr
}

// KeepAliveOfFd reads the keep-alive setting of the socket fd.
func KeepAliveOfFd(fd int) (KeepAlive, error) {
	var errs []error
	get := func(level, opt int) int {
		v, err := syscall.GetsockoptInt(fd, level, opt)
		errs = append(errs, err)
		return v
	}
	ka := KeepAlive{
		On:       get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0,
		Idle:     get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE),
		Interval: get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL),
		Count:    get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT),
	}
	return ka, errors.Join(errs...)
}
