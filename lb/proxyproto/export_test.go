package proxyproto

import "net"

// ReadHeader reads the PROXY header of c as a Listener does, for the fuzz
// target and the benchmark of the reception path.
func ReadHeader(l *Listener, c net.Conn) (net.Conn, error) { return l.readHeader(c) }
