package lb

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/h1"
)

// maxClientTransports bounds the client connections that hold server
// connections of their own (Pools with a ProxyHeader); beyond it, requests
// open a server connection each.
const maxClientTransports = 4096

// ConnContext is the http.Server.ConnContext hook that lets a ReverseProxy
// keep server connections per client connection. It matters for Pools with
// a ProxyHeader only: a PROXY header names one client, so a server
// connection that carries one must never carry another client's requests
// (HAProxy marks such connections private). With ConnContext and ConnState
// set on the http.Server, each client connection gets its own server
// connections, reused by its requests and closed when it closes; without
// them, each such request opens a server connection and closes it after
// the response.
//
//	srv := &http.Server{Handler: proxy, ConnContext: proxy.ConnContext, ConnState: proxy.ConnState}
func (p *ReverseProxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	cc := &clientConn{proxy: p}
	p.clients.Store(c, cc)
	return context.WithValue(ctx, clientConnKey{}, cc)
}

// ConnState is the http.Server.ConnState hook that goes with ConnContext:
// when a client connection closes it closes the server connections opened
// for it; when it is hijacked (an upgrade) it closes their idle ones. It
// also counts client connections in the proxy's Stats, with or without
// ConnContext, and on Linux makes ClientTimeout the kernel's limit too
// (TCP_USER_TIMEOUT) for the data of a response already handed to it: a
// response that fits in the socket buffers leaves the proxy at once, and a
// reader that stopped reading would otherwise hold the connection, and
// that memory, for as long as the http.Server's IdleTimeout and then
// beyond, since a closed socket still delivers what it holds. With it the
// kernel aborts the connection when its data stays unacknowledged, or
// unsent behind a closed window, for ClientTimeout. Hijacked (upgraded)
// connections are left to the tunnel timeout.
func (p *ReverseProxy) ConnState(c net.Conn, st http.ConnState) {
	c = unwrapH2(c) // HTTP/2 served by ConfigureHTTP2 (h2.go)
	switch st {
	case http.StateNew:
		p.stats.open(time.Now())
		if d := p.clientTimeout(); d > 0 {
			setUserTimeout(c, d)
		}
		return
	case http.StateHijacked:
		// An upgraded stream's silences are the tunnel timeout's.
		if p.clientTimeout() > 0 {
			setUserTimeout(c, 0)
		}
		p.stats.cur.Add(-1)
	case http.StateClosed:
		p.stats.cur.Add(-1)
	default:
		return
	}
	if v, ok := p.clients.LoadAndDelete(c); ok {
		v.(*clientConn).close(st == http.StateClosed)
	}
}

type clientConnKey struct{}

// clientConn holds the server transports of one client connection.
type clientConn struct {
	proxy  *ReverseProxy
	mu     sync.Mutex
	closed bool
	rts    map[*Pool]*clientTransport
}

// transport returns the client's transport to pool, creating it with info
// on first use; nil when the client connection is gone or the bound is
// reached.
func (cc *clientConn) transport(pool *Pool, info *ConnInfo) *clientTransport {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return nil
	}
	if ct := cc.rts[pool]; ct != nil {
		return ct
	}
	if cc.proxy.clientTransports.Add(1) > maxClientTransports {
		cc.proxy.clientTransports.Add(-1)
		return nil
	}
	ct := cc.proxy.newClientTransport(pool, info, false)
	if cc.rts == nil {
		cc.rts = make(map[*Pool]*clientTransport)
	}
	cc.rts[pool] = ct
	return ct
}

func (cc *clientConn) close(all bool) {
	cc.mu.Lock()
	cc.closed = true
	rts := cc.rts
	cc.rts = nil
	cc.mu.Unlock()
	for _, ct := range rts {
		cc.proxy.clientTransports.Add(-1)
		if all {
			ct.close()
		} else {
			ct.closeIdle()
		}
	}
}

// clientTransport is a RoundTripper whose connections to servers are
// opened, PROXY header first, for one client.
type clientTransport struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// newClientTransport builds a transport to pool dialing for info; oneShot
// transports do not keep connections alive.
func (p *ReverseProxy) newClientTransport(pool *Pool, info *ConnInfo, oneShot bool) *clientTransport {
	ct := &clientTransport{conns: make(map[net.Conn]struct{})}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := pool.dial(ctx, &Server{Name: addr, Addr: addr}, info, true)
		if err != nil {
			return nil, err
		}
		ct.mu.Lock()
		defer ct.mu.Unlock()
		if ct.done {
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &clientServerConn{Conn: c, ct: ct}
		ct.conns[tc] = struct{}{}
		return tc, nil
	}
	switch {
	case p.NewTransport == nil:
		ct.rt = p.serverTransport(dial, nil, oneShot)
	case oneShot:
		ct.rt = withoutKeepAlives(p.NewTransport(pool, dial))
	default:
		ct.rt = p.NewTransport(pool, dial)
	}
	return ct
}

// withoutKeepAlives disables keep-alives in rt, a new and unused transport
// from a NewTransport hook, when it is of a kind that has the switch; the
// engine is replaced by a copy, since its configuration is fixed once built.
func withoutKeepAlives(rt http.RoundTripper) http.RoundTripper {
	switch t := rt.(type) {
	case *http.Transport:
		t.DisableKeepAlives = true
	case *h1.Transport:
		c := t.Clone()
		c.DisableKeepAlives = true
		if ft, ok := c.Fallback.(*http.Transport); ok {
			ft = ft.Clone()
			ft.DisableKeepAlives = true
			c.Fallback = ft
		}
		return c
	}
	return rt
}

// close closes every server connection of the transport, busy or idle.
func (ct *clientTransport) close() {
	ct.mu.Lock()
	ct.done = true
	conns := ct.conns
	ct.conns = nil
	ct.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	ct.closeIdle()
}

func (ct *clientTransport) closeIdle() {
	if ci, ok := ct.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// clientServerConn is a server connection of a clientTransport.
type clientServerConn struct {
	net.Conn
	ct *clientTransport
}

// NetConn returns the connection it wraps.
func (c *clientServerConn) NetConn() net.Conn { return c.Conn }

func (c *clientServerConn) Close() error {
	c.ct.mu.Lock()
	delete(c.ct.conns, c)
	c.ct.mu.Unlock()
	return c.Conn.Close()
}

// requestConnInfo describes the client connection of an incoming request,
// for the PROXY header of the server connections opened for it.
func requestConnInfo(req *http.Request) *ConnInfo {
	info := &ConnInfo{TLS: req.TLS, Accepted: time.Now()}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		info.Remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if la, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		info.Local = AddrPortOf(la)
	}
	if req.TLS != nil {
		info.SNI = req.TLS.ServerName
		if req.TLS.NegotiatedProtocol != "" {
			info.ALPN = []string{req.TLS.NegotiatedProtocol}
		}
	}
	return info
}

// closeIfSet closes ct when it is not nil.
func (ct *clientTransport) closeIfSet() {
	if ct != nil {
		ct.close()
	}
}
