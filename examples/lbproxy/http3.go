package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/http3"
)

// startHTTP3 serves srv's handler over HTTP/3 (-http3) on the UDP port of
// addr (opened by socks, so inherited in an upgrade), the TCP address srv is about to serve, with srv's TLS
// configuration and connection hooks, and makes srv's responses announce
// it (Alt-Svc). limits (nil: none) are the TCP side's: QUIC connections
// count with its connections, and those beyond -maxconn or
// -client-maxconn are refused before their handshake (a UDP socket has no
// accept queue to pause); -client-rate counts their requests in the proxy. Call it after srv is configured and before it serves; pass
// the returned Server to lb.ServeTLS so that it drains with srv, and call
// closeSocket once it has. If HTTP/3 stops on its own, fail is called. The
// UDP socket comes from socks: inherited on an upgrade, or fresh (with
// -freebind's control).
func startHTTP3(ctx context.Context, socks *sockets, srv *http.Server, addr net.Addr, limits *lb.Limits, logger *slog.Logger, out io.Writer, fail context.CancelFunc) (h3 *http3.Server, closeSocket func(), err error) {
	pc, err := socks.ListenPacket(ctx, "udp", addr.String())
	if err != nil {
		return nil, nil, fmt.Errorf("lbproxy: -http3: %w", err)
	}
	h3 = http3.ForServer(srv)
	h3.Logger = logger
	h3.Limits = limits
	srv.Handler = http3.AltSvc(pc.LocalAddr().(*net.UDPAddr).Port, 0, srv.Handler)
	go func() {
		if err := h3.Serve(pc); !errors.Is(err, http3.ErrServerClosed) {
			logger.Error("lbproxy: HTTP/3 stopped", slog.Any("error", err))
			fail()
		}
	}()
	fmt.Fprintf(out, "lbproxy: http3 on udp %s\n", pc.LocalAddr())
	return h3, func() { pc.Close() }, nil
}
