package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// ServeConn proxies the client connection c to a server of the pool, with
// retries on connection failure, and copies bytes both ways until both
// directions end or TunnelTimeout passes without traffic. When no server is
// pickable the connection goes to Fallback, or is closed.
func (p *Pool) ServeConn(ctx context.Context, c *Conn) {
	sc, lease, err := p.connect(ctx, c.Info.PickInfo(), &c.Info)
	if err != nil {
		if errors.Is(err, ErrNoServer) && p.Fallback != nil {
			p.Fallback.ServeConn(ctx, c)
			return
		}
		p.logger().LogAttrs(ctx, slog.LevelDebug, "no server for connection",
			slog.String("pool", p.Name), slog.String("client", c.Info.Remote.String()), slog.Any("error", err))
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{}) // the frontend's handshake deadline
	client, pending := unwrapConn(c)
	sctx, done := p.sessionContext(ctx, lease.Server)
	up, down, err := pipe.Proxy(sctx, client, sc, pipe.Options{Idle: p.tunnelTimeout(), ClientPending: pending})
	done()
	lease.Done(Outcome{Err: err, Sent: up, Received: down})
}

// unwrapConn peels *Conn layers (and a ProxyListener's connection, whose
// addresses are in c.Info already) so that the copy sees the raw connection
// (and can splice), returning the peeked bytes they held.
func unwrapConn(c *Conn) (net.Conn, []byte) {
	var pending []byte
	var nc net.Conn = c
	for {
		var b []byte
		switch cc := nc.(type) {
		case *Conn:
			b, nc = cc.TakeBuffered(), cc.Conn
		case *proxiedConn:
			b, nc = cc.takeRest(), cc.Conn
		default:
			return nc, pending
		}
		if len(b) > 0 {
			// Outer layers were read before inner ones.
			pending = append(pending, b...)
		}
	}
}
