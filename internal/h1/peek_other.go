//go:build !unix

package h1

// peekState is empty where sockets cannot be peeked at.
type peekState struct{}

// alive cannot peek at sockets here: idle connections are assumed alive,
// as net/http does.
func (pc *serverConn) alive() bool { return true }
