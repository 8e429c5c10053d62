// Package keepalive sets a TCP keep-alive setting on accepted connections
// where Go's listener does not: a listener made by net.FileListener (a
// socket inherited from another process) turns keep-alive on with Go's
// default (15 s) at every accept, whatever a net.ListenConfig says. lb's
// KeepAliveListener and lb/upgrade's inherited listeners use it, so that
// the two read a ListenConfig's fields the one way Go's accept does.
package keepalive

import (
	"net"
	"time"
)

// Listener returns ln with Set applied to each *net.TCPConn it accepts;
// other connections are returned as they are. It is safe for concurrent
// use as ln is; closing it closes ln.
func Listener(ln net.Listener, keepAlive time.Duration, cfg net.KeepAliveConfig) net.Listener {
	return &listener{Listener: ln, keepAlive: keepAlive, cfg: cfg}
}

// Set sets on c the keep-alive that a net.ListenConfig's KeepAlive and
// KeepAliveConfig describe, as Go's own accept reads them: cfg when
// cfg.Enable; off when keepAlive is negative; else on, with keepAlive as
// the idle time (zero: Go's default). It is best effort, as Go's accept:
// an error of the system is ignored.
func Set(c *net.TCPConn, keepAlive time.Duration, cfg net.KeepAliveConfig) {
	switch {
	case cfg.Enable:
		_ = c.SetKeepAliveConfig(cfg)
	case keepAlive < 0:
		_ = c.SetKeepAlive(false)
	default:
		_ = c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAlive})
	}
}

type listener struct {
	net.Listener
	keepAlive time.Duration
	cfg       net.KeepAliveConfig
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		Set(tc, l.keepAlive, l.cfg)
	}
	return c, nil
}
