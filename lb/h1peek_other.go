//go:build !unix

package lb

// h1Peek is empty where sockets cannot be peeked at.
type h1Peek struct{}

// alive cannot peek at sockets here: idle connections are assumed alive,
// as net/http does.
func (pc *h1Conn) alive() bool { return true }
