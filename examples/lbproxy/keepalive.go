package main

import (
	"flag"
	"net"
	"time"
)

// TCP keep-alive probes (-client-tcp-keepalive, -server-tcp-keepalive) are
// off by default, as HAProxy's "option clitcpka" and "option srvtcpka"
// are: lbproxy's own timeouts (-timeout, -client-timeout,
// -connect-timeout) find dead peers, and probes cost about four
// setsockopt(2) calls per socket. A duration turns them on for the
// connections from clients (every listener lbproxy opens, -admin's
// included, and those inherited through -upgrade-socket) or to servers
// (every pool; health checks keep Go's default): the first probe after
// that long idle, then every 15 s, nine unanswered ones closing the
// connection.

// addKeepAliveFlags registers the keep-alive flags into c.
func addKeepAliveFlags(fs *flag.FlagSet, c *config) {
	fs.DurationVar(&c.clientTCPKeepAlive, "client-tcp-keepalive", 0, "TCP keep-alive probes on client connections after this long idle, as HAProxy's option clitcpka (0: off, the proxy's timeouts find dead clients)")
	fs.DurationVar(&c.serverTCPKeepAlive, "server-tcp-keepalive", 0, "TCP keep-alive probes on server connections after this long idle, as HAProxy's option srvtcpka (0: off, the proxy's timeouts find dead servers)")
}

// tcpKeepAlive is the keep-alive of a flag: off unless idle > 0.
func tcpKeepAlive(idle time.Duration) net.KeepAliveConfig {
	if idle <= 0 {
		return net.KeepAliveConfig{}
	}
	return net.KeepAliveConfig{Enable: true, Idle: idle}
}
