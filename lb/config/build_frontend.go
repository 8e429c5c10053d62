package config

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/http3"
	"github.com/lbkit/lbkit/tlsmode"
)

// frontendRT is one running frontend: its port (kept while the frontend
// keeps its inbound_port) and the server generation that serves it (kept
// while serverKey is equal; its chain is swapped on every Apply).
type frontendRT struct {
	id, name string
	port     *port
	key      string
	gen      serverGen
}

// serverGen is the server of a frontend: an http.Server with its
// ReverseProxy, or a TCPFrontend.
type serverGen interface {
	// serve starts serving the generation's handoff listener.
	serve()
	// install makes c serve new connections and requests.
	install(c *chain)
	// stats are the generation's frontend statistics.
	stats() lb.FrontendStats
	// handoff is the listener the port feeds.
	handoff() *handoff
	// shutdown stops accepting, waits for open work until ctx ends, then
	// closes what is left.
	shutdown(ctx context.Context)
	// forget drops what the generation keeps for a retired pool.
	forget(p *lb.Pool)
}

// chain is what a frontend runs between its server and its pools, built
// anew on every Apply.
type chain struct {
	rules  *acl.Rules // nil: none
	def    *lb.Pool
	router *acl.Router // HTTP routes
	mux    *lb.Mux     // TCP routes by SNI; nil without routes
	certs  *certSet    // nil without TLS
	http   map[*lb.Pool]*httpBackend
	acme   []*acmeCert // HTTP-01 answered on plain HTTP frontends
}

// serverKey renders the settings of f that its server is built with: what
// kind of server (TCP or HTTP, with or without TLS), with TLS the profile
// and session tickets, the client timeout, the limits, HTTP/3 and access
// logs. A change of any rebuilds the server on the same sockets; the rest
// (backend, routes, ACLs, certificates) is swapped in place.
func serverKey(f *Frontend, httpMode bool, doc *Document) string {
	k := struct {
		HTTP, TLS  bool
		Profile    SSLCompatibilityLevel `json:",omitempty"`
		Tickets    string                `json:",omitempty"`
		Client     *Millis
		Rate       *uint32
		Lbkit      *FrontendExtensions
		H3, Access bool
	}{HTTP: httpMode, TLS: len(f.CertificateIDs) > 0,
		Client: f.TimeoutClient, Rate: f.ConnectionRateLimit, Lbkit: f.Lbkit, H3: f.EnableHTTP3, Access: f.EnableAccessLogs}
	if k.TLS { // a plain frontend does not use them
		k.Profile, k.Tickets = doc.LB.SSLCompatibilityLevel, doc.Secrets.SessionTicketSecret
	}
	j, _ := json.Marshal(k)
	return string(j)
}

// limitsOf returns the lb.Limits of f, nil when it sets none; with
// RuntimeOptions.Shared, its client rate is decided by the shared
// ClientRater.
func (rt *Runtime) limitsOf(f *Frontend) (*lb.Limits, error) {
	l := localLimits(f)
	if l == nil || l.ClientRate == 0 || rt.opts.Shared == nil {
		return l, nil
	}
	r, err := rt.opts.Shared.ClientRater(f.ID, l.ClientRate, l.ClientBurst)
	if err != nil {
		return nil, fmt.Errorf("shared client rate: %w", err)
	}
	l.ClientRater = r
	return l, nil
}

// localLimits returns the lb.Limits of f, nil when it sets none.
func localLimits(f *Frontend) *lb.Limits {
	l := &lb.Limits{}
	if r := f.ConnectionRateLimit; r != nil && *r > 0 {
		l.ConnRate = float64(*r)
	}
	if x := f.Lbkit; x != nil {
		l.MaxConns = int(x.MaxConnections)
		l.ClientMaxConns = int(x.ClientMaxConnections)
		l.ClientRate = x.ClientRate
		l.ClientBurst = int(x.ClientBurst)
	}
	if l.ConnRate == 0 && l.MaxConns == 0 && l.ClientMaxConns == 0 && l.ClientRate == 0 {
		return nil
	}
	return l
}

// tlsConfig is the TLS configuration of a frontend generation: the
// document's profile, the session tickets, and certificates chosen by
// certs at each handshake.
func (rt *Runtime) tlsConfig(doc *Document, httpMode bool, certs func() *certSet) (*tls.Config, error) {
	profile, err := tlsmode.ParseProfile(strings.TrimPrefix(string(doc.LB.SSLCompatibilityLevel), "ssl_compatibility_level_"))
	if err != nil {
		return nil, err
	}
	c := tlsmode.Config{Profile: profile, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return certs().GetCertificate(h)
	}}
	c.TicketKeys = rt.ticketsFor(rt.ticketSecret(doc))
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("session tickets: %w", err)
	}
	var cfg *tls.Config
	if httpMode {
		cfg = c.HTTPConfig()
	} else {
		cfg = c.ServerConfig()
	}
	cfg.NextProtos = append(cfg.NextProtos, acmeALPN)
	return cfg, nil
}

// httpGen serves an HTTP frontend: an http.Server (HTTPS with
// certificates, HTTP/2 through ALPN; HTTP/3 beside it when enabled) and
// one ReverseProxy, whose pools and per-backend settings come from the
// chain in place.
type httpGen struct {
	rt      *Runtime
	ln      *handoff
	srv     *http.Server
	fe      lb.TLSFrontend // srv, or lbkit's engine serving it (RuntimeOptions.HTTPEngine)
	proxy   *lb.ReverseProxy
	handler lb.HandlerSwitch
	cur     atomic.Pointer[chain]
	tls     bool
	h3      *http3.Server
	pcs     []net.PacketConn
	done    chan struct{} // Serve returned
}

func (rt *Runtime) newHTTPGen(f *Frontend, doc *Document, addr net.Addr) (*httpGen, error) {
	g := &httpGen{rt: rt, ln: newHandoff(addr), done: make(chan struct{})}
	limits, err := rt.limitsOf(f)
	if err != nil {
		return nil, err
	}
	g.proxy = &lb.ReverseProxy{
		Name:          f.Name,
		Route:         func(r *http.Request) *lb.Pool { return g.cur.Load().router.Route(r) },
		ClientTimeout: nonZero(f.TimeoutClient.D()),
		NewTransport:  g.newTransport,
		Fallback:      http.HandlerFunc(g.fallback),
		Logger:        rt.logger.With("frontend", f.ID),
		Limits:        limits,
	}
	if f.EnableAccessLogs && rt.opts.AccessLog != nil {
		g.proxy.AccessLog = rt.opts.AccessLog
	}
	client := f.TimeoutClient.D()
	readHeader := lbDefaultReadHeader
	if client > 0 {
		readHeader = min(client, readHeader)
	}
	g.srv = &http.Server{
		Handler:           &g.handler,
		ReadHeaderTimeout: readHeader,
		IdleTimeout:       cmp.Or(client, lbDefaultReadHeader),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(rt.logger.Handler(), slog.LevelDebug),
		ConnState:         g.proxy.ConnState,
		ConnContext:       g.proxy.ConnContext,
	}
	if hook := rt.opts.ConnState; hook != nil {
		own := g.srv.ConnState
		g.srv.ConnState = func(c net.Conn, st http.ConnState) {
			own(c, st)
			hook(c, st)
		}
	}
	if limits != nil {
		next := g.srv.ConnContext
		g.srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return next(limits.ConnContext(ctx, c), c)
		}
	}
	if len(f.CertificateIDs) > 0 {
		g.tls = true
		cfg, err := rt.tlsConfig(doc, true, func() *certSet { return g.cur.Load().certs })
		if err != nil {
			return nil, err
		}
		g.srv.TLSConfig = cfg
		if err := lb.ConfigureHTTP2(g.srv, lb.HTTP2Options{}); err != nil {
			return nil, err
		}
	}
	if f.EnableHTTP3 && g.tls {
		g.h3 = http3.ForServer(g.srv)
		g.h3.Logger = g.proxy.Logger
		g.h3.Limits = limits
		g.h3.Handler = &g.handler
		g.srv.Handler = http3.AltSvc(int(f.InboundPort), 0, &g.handler)
	}
	switch rt.opts.HTTPEngine {
	case HTTPEngineNetHTTP:
		g.fe = g.srv
	case "", HTTPEngineLbkit:
		hf, err := lb.NewHTTPFrontend(g.srv)
		if err != nil {
			return nil, err
		}
		hf.QuickAck = rt.opts.QuickAck
		g.fe = hf
	default:
		return nil, fmt.Errorf("config: unknown HTTP engine %q (want %q or %q)", rt.opts.HTTPEngine, HTTPEngineLbkit, HTTPEngineNetHTTP)
	}
	return g, nil
}

// lbDefaultReadHeader bounds the request headers (and idle keep-alive
// connections when the client timeout is none).
const lbDefaultReadHeader = 10 * time.Second

// listenH3 opens the UDP sockets of HTTP/3 on every address.
func (g *httpGen) listenH3(ctx context.Context, number int32) error {
	if g.h3 == nil {
		return nil
	}
	for _, ip := range g.rt.opts.IPs {
		pc, err := g.rt.listenPacket(ctx, "udp", net.JoinHostPort(ip.String(), strconv.Itoa(int(number))))
		if err != nil {
			for _, c := range g.pcs {
				c.Close()
			}
			g.pcs = nil
			return fmt.Errorf("frontend port %d: HTTP/3: %w", number, err)
		}
		g.pcs = append(g.pcs, pc)
	}
	return nil
}

func (g *httpGen) handoff() *handoff { return g.ln }

func (g *httpGen) serve() {
	var ln net.Listener = g.ln
	if g.proxy.Limits != nil {
		ln = g.proxy.Limits.Listener(ln)
	}
	go func() {
		defer close(g.done)
		var err error
		if g.tls {
			err = g.fe.ServeTLS(ln, "", "")
		} else {
			err = g.fe.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			g.rt.logger.Error("frontend stopped", "frontend", g.proxy.Name, "err", err)
		}
	}()
	for _, pc := range g.pcs {
		go func() {
			if err := g.h3.Serve(pc); err != nil && !errors.Is(err, http3.ErrServerClosed) {
				g.rt.logger.Error("HTTP/3 stopped", "frontend", g.proxy.Name, "err", err)
			}
		}()
	}
}

func (g *httpGen) install(c *chain) {
	g.cur.Store(c)
	var h http.Handler = g.proxy
	if c.rules != nil {
		h = acl.FilterHTTP(c.rules, h)
	}
	if !g.tls && len(c.acme) > 0 {
		h = acmeHTTP01(c.acme, h)
	}
	g.handler.Store(h)
}

// acmeHTTP01 answers the HTTP-01 challenges of certs: a request goes to
// the ACME handler of the certificate whose names include its host, and
// every other request to next. An ACME handler answers every challenge
// path itself (403 for hosts not its own), so they cannot be chained.
func acmeHTTP01(certs []*acmeCert, next http.Handler) http.Handler {
	handlers := make([]http.Handler, len(certs))
	for i, a := range certs {
		handlers[i] = a.acme.HTTPHandler(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		for i, a := range certs {
			if a.allows(host) {
				handlers[i].ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *httpGen) stats() lb.FrontendStats { return g.proxy.Stats() }

func (g *httpGen) forget(p *lb.Pool) { g.proxy.ForgetPool(p) }

func (g *httpGen) shutdown(ctx context.Context) {
	all := []lb.Shutdowner{g.fe, g.proxy}
	if g.h3 != nil {
		all = append(all, g.h3)
	}
	shutdownAll(ctx, all)
	<-g.done
	for _, pc := range g.pcs {
		pc.Close()
	}
	g.proxy.CloseIdleConnections() // not kept for the transports' idle timeout
}

// shutdownAll shuts every s down within ctx, and closes them all if one
// did not finish in time.
func shutdownAll(ctx context.Context, all []lb.Shutdowner) {
	errs := make(chan error, len(all))
	for _, s := range all {
		go func() { errs <- s.Shutdown(ctx) }()
	}
	var failed bool
	for range all {
		if err := <-errs; err != nil {
			failed = true
		}
	}
	if failed {
		for _, s := range all {
			s.Close()
		}
	}
}

// newTransport is the proxy's NewTransport: the transport of the backend
// pool p, with its TLS, Host and server timeout.
func (g *httpGen) newTransport(p *lb.Pool, dial lb.DialFunc) http.RoundTripper {
	hb := g.rt.httpBackendOf(p)
	if hb == nil {
		hb = &httpBackend{scheme: "http"}
	}
	shape := &lb.ReverseProxy{Scheme: hb.scheme, TLSClientConfig: hb.tls, ServerHost: hb.host, ServerTimeout: hb.timeout}
	base := shape.ServerTransport(dial, nil)
	if hb.scheme == "http" && hb.host == "" {
		return base
	}
	return &backendTransport{base: base, scheme: hb.scheme, host: hb.host}
}

// fallback answers the requests that find no server up: the backend's
// failover host when it has one, else 503.
func (g *httpGen) fallback(w http.ResponseWriter, r *http.Request) {
	if hb := g.rt.httpBackendOf(g.cur.Load().router.Route(r)); hb != nil && hb.failover != nil {
		hb.failover.ServeHTTP(w, r)
		return
	}
	if lb.IsGRPC(r) {
		lb.WriteGRPCError(w, r, lb.GRPCCodeForError(lb.ErrNoServer), "no server available")
		return
	}
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}

// backendTransport sends requests to a backend's servers with its scheme
// (https when it bridges) and Host.
type backendTransport struct {
	base   http.RoundTripper
	scheme string
	host   string
}

func (t *backendTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := *req
	u := *req.URL
	u.Scheme = t.scheme
	out.URL = &u
	if t.host != "" {
		out.Host = t.host
	}
	return t.base.RoundTrip(&out)
}

// CloseIdleConnections closes the idle connections of the transport.
func (t *backendTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// tcpGen serves a TCP frontend: a TCPFrontend whose chain (ACLs, TLS
// offload or SNI peeking, SNI routes, pools) sits in a Switch.
type tcpGen struct {
	rt   *Runtime
	ln   *handoff
	fe   *lb.TCPFrontend
	sw   lb.Switch
	cur  atomic.Pointer[chain]
	tls  *tls.Config
	done chan struct{}
}

func (rt *Runtime) newTCPGen(f *Frontend, doc *Document, addr net.Addr) (*tcpGen, error) {
	g := &tcpGen{rt: rt, ln: newHandoff(addr), done: make(chan struct{})}
	limits, err := rt.limitsOf(f)
	if err != nil {
		return nil, err
	}
	g.fe = &lb.TCPFrontend{Name: f.Name, Backend: &g.sw, Logger: rt.logger.With("frontend", f.ID), Limits: limits}
	if c := f.TimeoutClient.D(); c > 0 {
		g.fe.HandshakeTimeout = min(c, lb.DefaultHandshakeTimeout)
	}
	if f.EnableAccessLogs && rt.opts.AccessLog != nil {
		g.fe.AccessLog = rt.opts.AccessLog
	}
	if len(f.CertificateIDs) > 0 {
		cfg, err := rt.tlsConfig(doc, false, func() *certSet { return g.cur.Load().certs })
		if err != nil {
			return nil, err
		}
		g.tls = cfg
	}
	return g, nil
}

func (g *tcpGen) handoff() *handoff { return g.ln }

func (g *tcpGen) serve() {
	go func() {
		defer close(g.done)
		if err := g.fe.Serve(g.ln); err != nil && !errors.Is(err, lb.ErrFrontendClosed) && !errors.Is(err, net.ErrClosed) {
			g.rt.logger.Error("frontend stopped", "frontend", g.fe.Name, "err", err)
		}
	}()
}

func (g *tcpGen) install(c *chain) {
	g.cur.Store(c)
	var b lb.Backend = c.def
	if c.mux != nil {
		b = c.mux
	}
	switch {
	case g.tls != nil:
		off := tlsmode.Offload(g.tls, b)
		off.Logger = g.fe.Logger
		b = off
	case c.mux != nil:
		pt := tlsmode.Passthrough(b)
		pt.Logger = g.fe.Logger
		b = pt
	}
	if c.rules != nil {
		b = acl.Filter(c.rules, b)
	}
	g.sw.Store(b)
}

func (g *tcpGen) stats() lb.FrontendStats { return g.fe.Stats() }

func (g *tcpGen) forget(*lb.Pool) {}

func (g *tcpGen) shutdown(ctx context.Context) {
	shutdownAll(ctx, []lb.Shutdowner{g.fe})
	<-g.done
}

// compileACLs turns the ACLs of frontend id, in index order, into rules.
func compileACLs(doc *Document, id string) (*acl.Rules, error) {
	var list []*ACL
	for i := range doc.ACLs {
		if doc.ACLs[i].FrontendID == id {
			list = append(list, &doc.ACLs[i])
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(list, func(a, b *ACL) int { return int(a.Index) - int(b.Index) })
	rules := make([]acl.Rule, 0, len(list))
	for _, a := range list {
		r, err := aclRule(a)
		if err != nil {
			return nil, fmt.Errorf("acl %q: %w", a.ID, err)
		}
		rules = append(rules, r)
	}
	return acl.Compile(rules...)
}

// aclRule maps one ACL to an acl.Rule.
func aclRule(a *ACL) (acl.Rule, error) {
	r := acl.Rule{Name: cmp.Or(a.Name, a.ID)}
	m := a.Match
	for _, s := range m.IPSubnet {
		p, err := parsePrefix(*s)
		if err != nil {
			return r, err
		}
		r.IPs = append(r.IPs, p)
	}
	values := make([]string, 0, len(m.HTTPFilterValue))
	for _, v := range m.HTTPFilterValue {
		values = append(values, *v)
	}
	switch m.HTTPFilter {
	case HTTPFilterPathBegin:
		r.PathPrefix = values
	case HTTPFilterPathEnd:
		r.PathSuffix = values
	case HTTPFilterRegex:
		// Several expressions are OR-ed, as several values of the other
		// filters are.
		alts := make([]string, len(values))
		for i, v := range values {
			alts[i] = "(?:" + v + ")"
		}
		r.PathRegexp = strings.Join(alts, "|")
	case HTTPFilterHeaderMatch:
		r.Header = *m.HTTPFilterOption
		r.HeaderValues = values
	}
	r.Invert = m.Invert
	switch a.Action.Type {
	case ACLDeny:
		r.Action = acl.Deny
	case ACLRedirect:
		r.Action = acl.RedirectTo
		rd := a.Action.Redirect
		r.Redirect.Code = int(*rd.Code)
		if rd.Type == RedirectScheme {
			r.Redirect.Scheme = rd.Target
		} else {
			r.Redirect.Location = rd.Target
		}
	}
	return r, nil
}
