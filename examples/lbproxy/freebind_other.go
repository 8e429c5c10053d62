//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// freebindSupported reports whether -freebind can be honoured here.
const freebindSupported = false

// setFreebind refuses: IP_FREEBIND is Linux's.
func setFreebind(network, address string, rc syscall.RawConn) error {
	return errors.New("lbproxy: -freebind needs Linux (IP_FREEBIND)")
}
