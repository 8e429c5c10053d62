package tlsmode_test

import (
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// peek is the passthrough peek that BenchmarkPeekClientHello measures.
func peek(c *lb.Conn) error {
	return tlsmode.PeekSNI(c)
}
