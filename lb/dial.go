package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// connect acquires a server and opens a connection to it, retrying failed
// attempts on other servers or the same one (Pool.RedispatchEvery). info describes the client for the PROXY header;
// it may be nil.
// When ci is not nil, connect fills it in for the access log.
func (p *Pool) connect(ctx context.Context, pi PickInfo, info *ConnInfo, ci *connectInfo) (net.Conn, Lease, error) {
	retries := p.retries()
	var failed *Server
	var lease Lease
	for attempt := 0; ; attempt++ {
		if lease.Server == nil {
			var err error
			if lease, err = p.Acquire(ctx, pi); err != nil {
				return nil, Lease{}, err
			}
			countRedispatch(failed, lease.Server)
		}
		if ci != nil {
			ci.leased, ci.retries = true, attempt
			ci.redispatch = failed != nil && failed != lease.Server
		}
		c, err := p.dial(ctx, lease.Server, info, false)
		if err == nil {
			tc := lease.since()
			countConnect(lease.Server, tc)
			if ci != nil {
				ci.tc = tc
			}
			return c, lease, nil
		}
		retry := attempt < retries && ctx.Err() == nil
		if retry {
			countRetry(lease.Server)
		}
		p.logger().LogAttrs(ctx, slog.LevelDebug, "connect failed",
			slog.String("pool", p.Name), slog.String("server", lease.Server.Name),
			slog.Int("attempt", attempt+1), slog.Any("error", err))
		o := Outcome{Err: err, Connect: true}
		if retry && !p.redispatch(attempt+1) {
			lease = lease.again(o)
			continue
		}
		lease.Done(o)
		if !retry {
			return nil, Lease{}, err
		}
		failed = lease.Server
		pi.Avoid = append(pi.Avoid, lease.Server)
		lease = Lease{}
	}
}

// dial opens one connection to s and writes the PROXY header, within the
// connect timeout.
// Unless plain, it then runs the TLS handshake of Pool.TLS.
func (p *Pool) dial(ctx context.Context, s *Server, info *ConnInfo, plain bool) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, p.connectTimeout())
	defer cancel()
	var c net.Conn
	var err error
	if p.Dial != nil {
		c, err = p.Dial(dctx, "tcp", s.Addr)
	} else {
		c, err = p.dialDefault(dctx, s.Addr)
	}
	if err != nil {
		return nil, &ConnectError{Server: s.Name, Err: err}
	}
	if p.ProxyHeader != nil {
		deadline, _ := dctx.Deadline()
		c.SetWriteDeadline(deadline)
		if err := p.ProxyHeader(c, info, s); err != nil {
			c.Close()
			return nil, &ConnectError{Server: s.Name, Err: fmt.Errorf("proxy header: %w", err)}
		}
		c.SetWriteDeadline(time.Time{})
	}
	if p.TLS != nil && !plain {
		tc := tls.Client(c, p.clientTLS(info, s))
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, &ConnectError{Server: s.Name, Err: fmt.Errorf("tls: %w", err)}
		}
		c = tc
	}
	return c, nil
}

// dialDefault opens a TCP connection to addr with the pool's dialer. An
// address that is an IP literal and a port, the usual case, is dialed as
// such: the resolver's path, which a host name needs, took about 2.4% of
// lbproxy's CPU profile under SNI passthrough, a new server connection
// per client (BENCHMARKS.md).
func (p *Pool) dialDefault(ctx context.Context, addr string) (net.Conn, error) {
	d := p.dialer()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	tc, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, ap)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return tc, nil
}

// clientTLS returns the TLS configuration for a connection to s: Pool.TLS
// with the server name chosen as TLS documents. It copies the config only
// when the name differs from the configured one.
func (p *Pool) clientTLS(info *ConnInfo, s *Server) *tls.Config {
	name := ""
	if p.TLSServerName != nil {
		name = p.TLSServerName(info, s)
	}
	if name == "" {
		name = p.TLS.ServerName
	}
	if name == "" {
		if host, _, err := net.SplitHostPort(s.Addr); err == nil {
			name = host
		}
	}
	if name == p.TLS.ServerName {
		return p.TLS
	}
	c := p.TLS.Clone()
	c.ServerName = name
	return c
}

// ConnectError reports a failure to connect to a server: nothing of the
// client's was sent, so the attempt can be retried elsewhere.
type ConnectError struct {
	Server string
	Err    error
}

func (e *ConnectError) Error() string { return "lb: connect to " + e.Server + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Timeout reports whether the attempt timed out.
func (e *ConnectError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// DialContext opens a connection to a server of the pool, ignoring network
// and addr: it balances client-side, for http.Transport.DialContext or a
// database driver. Failed attempts are retried (Retries, RedispatchEvery). The server
// stays active until the returned connection is closed.
func (p *Pool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, lease, err := p.connect(ctx, PickInfo{}, nil, nil)
	if err != nil {
		return nil, err
	}
	return &leasedConn{Conn: c, lease: lease}, nil
}

// leasedConn ends its Lease when closed.
type leasedConn struct {
	net.Conn
	lease Lease
	once  sync.Once
}

func (c *leasedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lease.Done(Outcome{}) })
	return err
}
