//go:build !linux

package lb

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known.
func setUserTimeout(c net.Conn, d time.Duration) {}
