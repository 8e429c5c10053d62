//go:build !linux

package pipe

import "net"

// session is the event loop's, which exists on Linux only.
type session struct{}

func canLoop(c, s net.Conn) bool { return false }

func (p *proxy) runLoop(pending []byte) bool { return false }

func (s *session) abort(reset bool) {}
