package acl

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/lbkit/lbkit/lb"
)

// Listener returns a listener that closes, at accept time and before any
// TLS or PROXY work, the connections the rules deny by client address
// alone. It decides only what cannot depend on anything else (see
// CheckAddr): a connection that a rule with SNI or HTTP filters, or a
// redirect, may still concern is returned from Accept for the next layer
// (Filter or FilterHTTP, with the same rules) to decide. With only IP rules,
// Listener alone enforces them.
//
// The client address is the socket's peer address: when the frontend
// accepts PROXY headers, wrap the listener that reads them with Listener so
// that the carried address is the one checked, or rely on Filter and
// FilterHTTP, which see the carried address. Denied connections are counted
// and logged at Debug level; Accept does not return them.
func Listener(rules *Rules, ln net.Listener) net.Listener {
	return &listener{Listener: ln, rules: rules}
}

type listener struct {
	net.Listener
	rules *Rules
}

// Accept returns the next connection the rules do not deny.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap := lb.AddrPortOf(c.RemoteAddr())
		d, ok := l.rules.CheckAddr(ap.Addr())
		if !ok || d.Action != Deny {
			return c, nil
		}
		c.Close()
		lg := l.rules.logger()
		if !lg.Enabled(context.Background(), slog.LevelDebug) {
			continue
		}
		lg.LogAttrs(context.Background(), slog.LevelDebug, "acl: connection denied",
			slog.String("layer", "listener"), slog.Int("rule", d.Rule), slog.String("name", l.rules.name(d.Rule)),
			slog.String("client", ap.String()))
	}
}

// Filter returns a Backend that applies the rules to each connection
// before handing it to next: a denied connection is closed. It sees the
// client address of lb.ConnInfo.Remote and the server name of
// lb.ConnInfo.SNI, which a tlsmode adapter in front of Filter fills when it
// peeks or terminates the handshake (otherwise SNI patterns match nothing).
// Rules with HTTP filters and redirect rules do not apply at L4 and are
// skipped.
//
// Place Filter after the adapter whose information its rules need:
// tlsmode.Passthrough(acl.Filter(rules, mux)) sees the SNI the adapter
// peeked. With IP rules only, acl.Filter(rules, tlsmode.Passthrough(mux))
// refuses clients before any peek or handshake, as Listener does.
//
// Each denied connection is counted in the Denied statistics of the
// lb.TCPFrontend that accepted it (lb.Conn.CountDenied).
func Filter(rules *Rules, next lb.Backend) lb.Backend {
	return &filter{rules: rules, next: next}
}

type filter struct {
	rules *Rules
	next  lb.Backend
}

// ServeConn serves c with the next Backend, or closes it if denied.
func (f *filter) ServeConn(ctx context.Context, c *lb.Conn) {
	d := f.rules.CheckConn(&c.Info)
	if d.Action == Deny {
		c.CountDenied()
		c.Close()
		lg := f.rules.logger()
		if !lg.Enabled(ctx, slog.LevelDebug) {
			return
		}
		lg.LogAttrs(ctx, slog.LevelDebug, "acl: connection denied",
			slog.String("layer", "l4"), slog.Int("rule", d.Rule), slog.String("name", f.rules.name(d.Rule)),
			slog.String("client", c.Info.Remote.String()), slog.String("sni", c.Info.SNI))
		return
	}
	f.next.ServeConn(ctx, c)
}

// FilterHTTP returns a handler that applies every rule to each request
// before handing it to next: denied requests get 403 Forbidden (gRPC
// requests, see lb.IsGRPC, the gRPC status PERMISSION_DENIED), redirected
// ones their redirect (or 400 Bad Request when the Host cannot be placed in
// the target). The client address is parsed from r.RemoteAddr, which
// carries the PROXY header's address when the frontend accepts them; the
// SNI is that of the terminated TLS session.
//
// When next is an lb.DeniedCounter (an *lb.ReverseProxy is), each denied
// request is counted in its statistics.
func FilterHTTP(rules *Rules, next http.Handler) http.Handler {
	f := &httpFilter{rules: rules, next: next}
	f.counter, _ = next.(lb.DeniedCounter)
	return f
}

type httpFilter struct {
	rules   *Rules
	next    http.Handler
	counter lb.DeniedCounter // next, when it counts denied requests
}

// ServeHTTP serves r with the next handler, or answers for the rule that
// matched.
func (f *httpFilter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := f.rules.CheckRequest(r)
	switch d.Action {
	case Allow:
		f.next.ServeHTTP(w, r)
		return
	case Deny:
		if f.counter != nil {
			f.counter.CountDenied()
		}
		f.log(r, d, "acl: request denied")
		if lb.IsGRPC(r) {
			lb.WriteGRPCError(w, r, lb.GRPCPermissionDenied, "forbidden")
			return
		}
		http.Error(w, "403 forbidden", http.StatusForbidden)
	case RedirectTo:
		c := &f.rules.rules[d.Rule]
		loc, err := c.redirect.expand(r)
		if err != nil {
			f.log(r, d, "acl: redirect with invalid host")
			http.Error(w, "400 bad request: invalid host", http.StatusBadRequest)
			return
		}
		f.log(r, d, "acl: request redirected", slog.String("location", loc))
		w.Header().Set("Location", loc)
		w.WriteHeader(c.code)
	}
}

func (f *httpFilter) log(r *http.Request, d Decision, msg string, extra ...slog.Attr) {
	lg := f.rules.logger()
	if !lg.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	attrs := append([]slog.Attr{slog.String("layer", "http"), slog.Int("rule", d.Rule), slog.String("name", f.rules.name(d.Rule)),
		slog.String("client", r.RemoteAddr), slog.String("host", r.Host), slog.String("path", r.URL.Path)}, extra...)
	lg.LogAttrs(r.Context(), slog.LevelDebug, msg, attrs...)
}
