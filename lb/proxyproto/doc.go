// Package proxyproto speaks the PROXY protocol (versions 1 and 2), with
// which load balancers tell the servers behind them who the client is.
//
// [V1] and [V2] write headers: each returns an [lb.HeaderFunc] for
// [lb.Pool].ProxyHeader, written first on every new server connection,
// before any TLS to the server (HAProxy's send-proxy, send-proxy-v2,
// send-proxy-v2-ssl, send-proxy-v2-ssl-cn). [V2Options] adds the SSL TLV
// (from [lb.ConnInfo].TLS), the client certificate's CN, AUTHORITY (SNI),
// ALPN and application TLVs. Connections lbkit opens on its own behalf
// (health checks, client-side dial) carry LOCAL. At L7, set the
// [lb.ReverseProxy]'s ConnContext and ConnState hooks on the http.Server so
// that each client keeps its own server connections:
//
//	pool := &lb.Pool{Name: "web", ProxyHeader: proxyproto.V2(proxyproto.V2Options{SSL: true, CN: true})}
//	proxy := &lb.ReverseProxy{Pool: pool}
//	srv := &http.Server{Handler: proxy, ConnContext: proxy.ConnContext, ConnState: proxy.ConnState}
//
// [Listener] reads headers behind another load balancer, from trusted
// networks only, and makes the carried client address the connection's
// RemoteAddr, which everything downstream uses (X-Forwarded-For, ACLs,
// stickiness, logs, the headers sent onward):
//
//	ln = &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
//
// The header codec is github.com/pires/go-proxyproto's, behind an internal
// package so that none of its types appear in this API.
package proxyproto
