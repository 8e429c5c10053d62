//go:build !linux

package h1

import "net"

// delayAcks does nothing where TCP_QUICKACK is not known.
func delayAcks(net.Listener) bool { return false }

// delayConnAcks does nothing where TCP_QUICKACK is not known.
func delayConnAcks(net.Conn) {}
