package proxyproto

import "net"

// ReadHeader reads the PROXY header of c as a Listener does, for the fuzz
// target and the benchmark of the reception path.
func ReadHeader(l *Listener, c net.Conn) (net.Conn, error) { return l.readHeader(c) }

// Pending returns the number of connections whose header l is reading. It
// starts l's accept loop if Accept has not.
func Pending(l *Listener) int {
	l.start.Do(l.init)
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}
