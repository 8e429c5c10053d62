package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/lbkit/lbkit/lb"
)

// sniMux routes tls-passthrough connections by SNI: each -sni-route
// NAME=ADDR,... gets a pool of its own, and other names (or no SNI) go to
// def.
func sniMux(cfg *config, def *lb.Pool, logger *slog.Logger) (*lb.Mux, error) {
	mux := &lb.Mux{Default: def}
	for _, r := range strings.Split(cfg.sniRoutes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		name, addrs, ok := strings.Cut(r, "=")
		if !ok {
			return nil, fmt.Errorf("lbproxy: -sni-route %q: want NAME=ADDR", r)
		}
		servers, err := parseServers(addrs, 0)
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -sni-route %q: %w", r, err)
		}
		p := &lb.Pool{Name: name, ConnectTimeout: cfg.connectTimeout, TCPKeepAlive: tcpKeepAlive(cfg.serverTCPKeepAlive), TunnelTimeout: cfg.timeout, Logger: logger}
		if err := p.Update(servers); err != nil {
			return nil, err
		}
		if err := mux.Handle(name, p); err != nil {
			return nil, err
		}
	}
	return mux, nil
}
