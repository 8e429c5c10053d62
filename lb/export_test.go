package lb

import "net"

// ClientIPForTest exposes clientIP to the external tests.
var ClientIPForTest = clientIP

// ReadProxyHeader reads the PROXY header of c as a ProxyListener does, for
// the fuzz target of the reception path.
func ReadProxyHeader(l *ProxyListener, c net.Conn) (net.Conn, error) { return l.readHeader(c) }
