//go:build !linux

package pipe

import (
	"net"
	"time"
)

// session and loop are the event loop's, which exists on Linux only.
type (
	session struct{}
	loop    struct{}
)

func canLoop(c, s net.Conn) bool { return false }

// MayLoop reports whether a session whose client side is c can go onto
// an event loop; there is none on this system.
func MayLoop(c net.Conn) bool { return false }

func (p *proxy) runLoop(l *loop, pending []byte) int { return loopDeclined }

func (s *session) abort(reset bool) {}

// Stalled reports a stuck event loop; without event loops there is none.
func Stalled(d time.Duration) error { return nil }
