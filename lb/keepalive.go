package lb

import (
	"net"

	"github.com/lbkit/lbkit/internal/keepalive"
)

// TCP keep-alive probes are off by default on the connections lbkit
// proxies, as HAProxy's "option clitcpka" and "option srvtcpka" and
// nginx's so_keepalive are: a dead client or server is found by the
// proxy's own timeouts (Pool.TunnelTimeout, the HTTP client and server
// timeouts, the connect timeout), and turning probes on costs about four
// setsockopt(2) calls per socket, eight per proxied connection. Go turns
// them on, every 15 s, on every socket a net.Dialer or a net.ListenConfig
// opens unless told otherwise: Pool.TCPKeepAlive says so for the server
// side, ListenKeepAlive and KeepAliveListener for the client side.
//
// Health checks and admin listeners keep Go's defaults.

// ListenKeepAlive sets lc so that the TCP listeners it creates apply ka to
// every connection they accept, at accept: when ka.Enable is false, no
// keep-alive option at all is set (lc.KeepAlive = -1); when it is true,
// ka's Idle, Interval and Count (zero: 15 s, 15 s and 9, as Go's defaults;
// negative: the system's). lc's other fields, such as Control, are kept.
//
// It covers only the listeners that lc.Listen creates. A listener made
// from an inherited file (net.FileListener, as lb/upgrade hands sockets to
// a successor) applies Go's default (on, 15 s) at accept whatever lc says;
// wrap it in KeepAliveListener.
func ListenKeepAlive(lc *net.ListenConfig, ka net.KeepAliveConfig) {
	lc.KeepAlive = -1 // only read when ka.Enable is false: off
	lc.KeepAliveConfig = ka
}

// KeepAliveListener returns ln with ka applied to each *net.TCPConn it
// accepts, for a listener whose own accept does not honor it (one made by
// net.FileListener, which turns keep-alive on with Go's default): when
// ka.Enable is false it turns keep-alive off (one setsockopt(2) per
// connection, after Go's own four), when true it sets ka. Other
// connections are returned as they are. A listener created by a
// net.ListenConfig set by ListenKeepAlive needs no wrapping, and costs
// nothing per connection when keep-alive is off.
//
// The returned listener is safe for concurrent use as ln is; closing it
// closes ln.
func KeepAliveListener(ln net.Listener, ka net.KeepAliveConfig) net.Listener {
	return keepalive.Listener(ln, -1, ka) // -1: off unless ka.Enable
}

// dialer returns the net.Dialer of a Pool without Dial: TCP keep-alive
// as Pool.TCPKeepAlive says, off by default.
func (p *Pool) dialer() net.Dialer {
	return net.Dialer{KeepAlive: -1, KeepAliveConfig: p.TCPKeepAlive}
}
