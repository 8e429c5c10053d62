//go:build !linux

package h1

import "syscall"

// watch does nothing here: without epoll, a request's context is not
// cancelled when its client closes the connection.
func (s *Server) watch(c *srvConn) {}

func (s *Server) unwatch(c *srvConn) {}

func pending(syscall.RawConn) bool { return false }

// hotState is empty here: hotRead is a plain read.
type hotState struct{}

// hotRead waits for the next bytes of an idle connection within its read
// deadline, in its read buffer.
func (c *srvConn) hotRead() (int, error) {
	if c.rbuf == nil {
		c.rbuf = getReadBuf()
	}
	return c.rwc.Read(c.rbuf)
}
