package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"

	"github.com/lbkit/lbkit/internal/demo"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// proxyProto is the PROXY protocol feature:
//
//	-proxy-protocol none|v1|v2|v2-ssl|v2-ssl-cn   header sent to servers
//	-accept-proxy CIDR,...                        upstreams allowed to send one
//
// With -accept-proxy, connections from the listed networks must start
// with a PROXY v1 or v2 header, whose client address then replaces the
// socket's everywhere (X-Forwarded-For, balancing, headers sent onward);
// connections from elsewhere are refused.
type proxyProto struct {
	send   string
	accept string
}

func init() { newFeatures = append(newFeatures, func() feature { return &proxyProto{send: "none"} }) }

// rank puts the feature before the others: reception must wrap the raw
// listener, under the layers other features add (accept-time ACLs, TLS),
// so that they see the carried client address.
func (f *proxyProto) rank() int { return -1 }

func (f *proxyProto) register(fs *flag.FlagSet) {
	fs.StringVar(&f.send, "proxy-protocol", "none", "PROXY protocol header sent first to servers: none, v1, v2, v2-ssl, v2-ssl-cn")
	fs.StringVar(&f.accept, "accept-proxy", "", "comma-separated networks (CIDR or address) allowed to send PROXY headers; others are refused")
}

// proxyHeaders maps each -proxy-protocol value to its HeaderFunc.
var proxyHeaders = map[string]func() lb.HeaderFunc{
	"none":      func() lb.HeaderFunc { return nil },
	"v1":        proxyproto.V1,
	"v2":        func() lb.HeaderFunc { return proxyproto.V2(proxyproto.V2Options{}) },
	"v2-ssl":    func() lb.HeaderFunc { return proxyproto.V2(proxyproto.V2Options{SSL: true}) },
	"v2-ssl-cn": func() lb.HeaderFunc { return proxyproto.V2(proxyproto.V2Options{SSL: true, CN: true}) },
}

func (f *proxyProto) apply(s *stack) error {
	hf, ok := proxyHeaders[f.send]
	if !ok {
		return fmt.Errorf("lbproxy: unknown -proxy-protocol %q (want none, v1, v2, v2-ssl or v2-ssl-cn)", f.send)
	}
	if s.pool.ProxyHeader = hf(); s.pool.ProxyHeader != nil && s.server != nil {
		// Server connections that carry a client's header are that
		// client's own.
		s.server.ConnContext = chainConnContext(s.server.ConnContext, s.proxy.ConnContext)
		s.server.ConnState = chainConnState(s.server.ConnState, s.proxy.ConnState)
	}
	if f.accept == "" {
		return nil
	}
	trusted, err := demo.Prefixes(f.accept)
	if err != nil {
		return fmt.Errorf("lbproxy: -accept-proxy: %w", err)
	}
	if len(trusted) == 0 {
		return fmt.Errorf("lbproxy: -accept-proxy: no network in %q", f.accept)
	}
	s.ln = &proxyproto.Listener{Listener: s.ln, Trusted: trusted, Logger: s.logger}
	return nil
}

func chainConnContext(a, b func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	if a == nil {
		return b
	}
	return func(ctx context.Context, c net.Conn) context.Context { return b(a(ctx, c), c) }
}

func chainConnState(a, b func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	if a == nil {
		return b
	}
	return func(c net.Conn, st http.ConnState) { a(c, st); b(c, st) }
}
