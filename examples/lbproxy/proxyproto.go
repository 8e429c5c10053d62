package main

import (
	"fmt"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// proxyHeader returns the PROXY protocol writer of a -proxy-protocol value:
// the header sent first on each new server connection (nil for none).
// Reception is -accept-proxy: connections from the listed networks must
// start with a PROXY v1 or v2 header, whose client address then replaces
// the socket's everywhere (X-Forwarded-For, balancing, headers sent
// onward); connections from elsewhere are refused.
func proxyHeader(send string) (lb.HeaderFunc, error) {
	switch send {
	case "none":
		return nil, nil
	case "v1":
		return proxyproto.V1(), nil
	case "v2":
		return proxyproto.V2(proxyproto.V2Options{}), nil
	case "v2-ssl":
		return proxyproto.V2(proxyproto.V2Options{SSL: true}), nil
	case "v2-ssl-cn":
		return proxyproto.V2(proxyproto.V2Options{SSL: true, CN: true}), nil
	}
	return nil, fmt.Errorf("lbproxy: unknown -proxy-protocol %q (want none, v1, v2, v2-ssl or v2-ssl-cn)", send)
}
