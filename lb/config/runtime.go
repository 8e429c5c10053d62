package config

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// RuntimeOptions configure a Runtime. Only IPs is required.
type RuntimeOptions struct {
	// IPs are the load balancer's addresses: every frontend listens on each
	// at its inbound_port. Required.
	IPs []netip.Addr

	// Logger receives the runtime's events; nil means slog.Default().
	Logger *slog.Logger

	// AccessLog receives one record per request or connection of the
	// frontends with enable_access_logs; nil logs nothing (see
	// lb/accesslog for writers).
	AccessLog lb.AccessLogger

	// Listen opens a frontend's listening socket; nil means a
	// net.ListenConfig with plain TCP (SetMultipathTCP(false)), as
	// HAProxy and Envoy listen unless told otherwise (Go's default is
	// MPTCP, whose listening sockets refuse TCP-level options such as
	// TCP_QUICKACK and TCP_USER_TIMEOUT). A process that hands its sockets to its successor
	// (a binary upgrade) sets it.
	Listen func(ctx context.Context, network, addr string) (net.Listener, error)

	// ClientTCPKeepAlive sets TCP keep-alive probes on the connections
	// the frontends accept, as HAProxy's "option clitcpka"; the zero value
	// turns them off (see lb.ListenKeepAlive), as HAProxy's default: the
	// client and tunnel timeouts find a dead client. It applies to the
	// listeners the Runtime opens itself; a Listen function sets its own
	// (lb.ListenKeepAlive, lb.KeepAliveListener).
	ClientTCPKeepAlive net.KeepAliveConfig

	// ServerTCPKeepAlive is every backend pool's lb.Pool.TCPKeepAlive, as
	// HAProxy's "option srvtcpka"; the zero value turns probes off. Health
	// checks keep Go's default.
	ServerTCPKeepAlive net.KeepAliveConfig

	// ListenPacket opens the UDP socket of a frontend's HTTP/3; nil means a
	// net.ListenConfig.
	ListenPacket func(ctx context.Context, network, addr string) (net.PacketConn, error)

	// ACME configures how Let's Encrypt certificates are obtained.
	ACME ACMEOptions

	// TLSClientRoots verifies the certificates of servers reached with
	// ssl_bridging, of https health checks and of https failover hosts;
	// nil means the system roots.
	TLSClientRoots *x509.CertPool

	// DrainGrace is how long a removed frontend, or the server of a
	// frontend rebuilt for a changed setting, keeps its open connections
	// before they are closed. Zero means DefaultDrainGrace.
	DrainGrace time.Duration

	// Secrets are used where the document has none: a session-ticket
	// secret shared by instances given the same one, and a sticky-cookie
	// secret. The document's secrets, when set, win. Empty fields mean
	// keys random to this Runtime.
	Secrets Secrets

	// Shared, when set, keeps the state that load balancers running the
	// same document share: the stick tables of backends with
	// sticky_sessions table and the per-client rates of frontends' lbkit
	// client_rate. Nil keeps both local to this Runtime (sticky.SourceIP,
	// lb.Limits' own buckets).
	Shared SharedState

	// OnServerEvent, when set, is called on every change of a server's
	// state: health checks taking it up or down, and its admin state
	// (drain, maint, ready). It is called from the goroutine that saw the
	// change (a health checker's, or Apply's) and must not block.
	OnServerEvent func(ServerEvent)

	// ConnState, when set, is called for every HTTP/1 and HTTP/2 frontend
	// connection state change, as http.Server.ConnState is, in addition
	// to the runtime's own hooks (which count connections and keep server
	// connections per client), after them. HTTP/2 connections may be
	// reported through a wrapper whose NetConn method returns the
	// connection StateNew reported; HTTP/3 frontends report a net.Conn
	// view of each QUIC connection (lb/http3), whose LocalAddr is a UDP
	// address. It must be fast and safe for concurrent use: it runs in
	// the connections' goroutines. Nil means none. A process that hands
	// its sockets to a successor uses it to see the connections it
	// accepted meanwhile.
	ConnState func(net.Conn, http.ConnState)

	// HTTPEngine is the server engine of the HTTP and HTTPS frontends'
	// HTTP/1.x: HTTPEngineLbkit (lb.HTTPFrontend: idle keep-alive
	// connections parked without goroutine or buffers) or
	// HTTPEngineNetHTTP (net/http's http.Server). Empty means
	// HTTPEngineLbkit.
	HTTPEngine string

	// QuickAck keeps the kernel's quick ACKs on the connections the HTTP
	// and HTTPS frontends accept (lb.HTTPFrontend.QuickAck), as HAProxy's
	// "no option tcp-smart-accept". By default the lbkit engine lets a
	// new connection's request be acknowledged by its response; set it
	// for clients that write a request in small pieces without
	// TCP_NODELAY. net/http's engine leaves the kernel's default.
	QuickAck bool
}

// The values of RuntimeOptions.HTTPEngine.
const (
	HTTPEngineLbkit   = "lbkit"
	HTTPEngineNetHTTP = "net/http"
)

// ACMEOptions configure the ACME client of Let's Encrypt certificates.
type ACMEOptions struct {
	// DirectoryURL is the ACME directory; empty means Let's Encrypt's
	// production service (tlsmode.LetsEncryptURL).
	DirectoryURL string
	// HTTPClient talks to the CA; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Email is the account's contact address; empty for none.
	Email string
	// CacheDir keeps the account key and certificates across restarts;
	// empty keeps them in memory (a new account and certificate at every
	// start, which Let's Encrypt rate-limits).
	CacheDir string
}

// SharedState makes the state shared by several load balancers (a stick
// table, per-client rates) for a Runtime; lbproxy implements it with Redis
// (sticky/redistable, lb/redisrate), so that package config depends on no
// store. Its methods are called from Apply, once per backend or frontend
// built, with its document id, which names the shared state: instances
// running the same document share it.
type SharedState interface {
	// StickyTable returns the affinity of the backend backendID, whose
	// sticky_sessions is table. When the affinity has a method
	// Run(context.Context) error, the Runtime runs it for as long as the
	// backend's pool serves.
	StickyTable(backendID string) (lb.Affinity, error)

	// ClientRater returns the per-client rate decision of the frontend
	// frontendID, whose lbkit client_rate and client_burst are rate and
	// burst.
	ClientRater(frontendID string, rate float64, burst int) (lb.ClientRater, error)
}

// runner is what runs beside a pool for as long as it serves.
type runner interface{ Run(context.Context) error }

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("config: the runtime is closed")

// Runtime runs a Document: it builds every frontend, backend, ACL, route
// and certificate on lbkit's data path and converges the running load
// balancer to each new document given to Apply. It is the Applier a
// Manager drives.
//
// Apply is all-or-nothing: everything new is built first (ports bound,
// certificates parsed, ACLs and routes compiled); if anything fails, what
// was created is closed and the running configuration is untouched. Then,
// without dropping a connection:
//
//   - A frontend whose inbound_port stays keeps its listening sockets.
//     Its backend, routes, ACLs and certificates are swapped atomically:
//     new connections and requests take the new chain, those in flight
//     finish on the old one, and keep-alive connections stay open. A
//     change of the settings its server is built with (TCP or HTTP, with
//     or without certificates, with certificates ssl_compatibility_level
//     and the session-ticket secret, timeout_client, connection_rate_limit, the lbkit limits,
//     enable_http3, enable_access_logs) builds a new server on the same
//     sockets: new connections go to it, and the old one drains its
//     connections (idle keep-alive connections are closed, as at a
//     graceful restart) for DrainGrace, then closes its idle connections
//     to the servers; its HTTP/3 connections are closed, and its
//     statistics restart. When both servers serve HTTP/3, the new one
//     binds its UDP sockets only once the old one has released them,
//     which is past the point where Apply can fail: should that bind
//     fail, Apply still succeeds and the frontend serves HTTP/1.1 and
//     HTTP/2 without HTTP/3 (logged as an error, "HTTP/3 not served";
//     clients sent to it by Alt-Svc fall back to TCP) until the next
//     Apply that rebuilds its server.
//   - A backend matched by id keeps its pool while only its servers
//     change (pool, forward_port, the lbkit weights, backups and admin
//     states, lbkit.dns: a changed DNS source restarts on the same pool,
//     and the servers it resolves again keep their state; a rebuilt pool
//     starts with the servers DNS last gave): servers matched by IP
//     keep their health state and counters, new ones start up and are
//     checked, removed ones drain (no new traffic; open connections end
//     on their own). Any other
//     change (algorithm, stickiness, health check, timeouts, retries,
//     PROXY protocol, TLS to the servers, host, failover host,
//     max_connections) builds a new pool: new traffic goes to it, and
//     connections open on the old one continue there; its servers start
//     in the state they had (up, or kept out while down or in
//     maintenance), re-checked, and its counters restart.
//   - A removed frontend stops accepting at once and drains its
//     connections for DrainGrace.
//
// A weight of 0 (lbkit extension) drains the server, as admin state
// drain does: it takes no new traffic but keeps its sessions. Leaving
// maintenance, a server resumes the verdict of its last health check.
//
// Its methods are safe for concurrent use; Apply calls are serialised.
type Runtime struct {
	opts         RuntimeOptions
	logger       *slog.Logger
	grace        time.Duration
	cookieSecret []byte
	tickets      *tlsmode.TicketKeys // without a session-ticket secret

	ticketMu sync.Mutex
	derived  map[string]*derivedTickets // by session-ticket secret
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	lbID     atomic.Value // string

	apply  sync.Mutex // serialises Apply and Close
	closed bool

	mu        sync.RWMutex // guards the maps below; held briefly
	doc       *Document
	backends  map[string]*backendRT // by id
	frontends map[int32]*frontendRT // by inbound_port
	acmes     map[string]*acmeCert  // by certificate id
	httpBE    sync.Map              // *lb.Pool → *httpBackend
}

// NewRuntime returns a Runtime that serves nothing until Apply.
func NewRuntime(opts RuntimeOptions) *Runtime {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Runtime{
		opts: opts, logger: opts.Logger, grace: opts.DrainGrace,
		tickets: &tlsmode.TicketKeys{}, derived: map[string]*derivedTickets{},
		ctx: ctx, cancel: cancel,
		backends: map[string]*backendRT{}, frontends: map[int32]*frontendRT{}, acmes: map[string]*acmeCert{},
	}
	if rt.logger == nil {
		rt.logger = slog.Default()
	}
	if rt.grace <= 0 {
		rt.grace = DefaultDrainGrace
	}
	rt.cookieSecret = make([]byte, 32)
	rand.Read(rt.cookieSecret)
	if s := opts.Secrets.StickyCookieSecret; s != "" {
		rt.cookieSecret = []byte(s)
	}
	rt.lbID.Store("")
	rt.wg.Go(func() { rt.tickets.Run(ctx) })
	return rt
}

var _ Applier = (*Runtime)(nil)

func (rt *Runtime) listen(ctx context.Context, network, addr string) (net.Listener, error) {
	if rt.opts.Listen != nil {
		return rt.opts.Listen(ctx, network, addr)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false) // see RuntimeOptions.Listen
	lb.ListenKeepAlive(&lc, rt.opts.ClientTCPKeepAlive)
	return lc.Listen(ctx, network, addr)
}

func (rt *Runtime) listenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	if rt.opts.ListenPacket != nil {
		return rt.opts.ListenPacket(ctx, network, addr)
	}
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, network, addr)
}

func (rt *Runtime) httpBackendOf(p *lb.Pool) *httpBackend {
	if p == nil {
		return nil
	}
	if v, ok := rt.httpBE.Load(p); ok {
		return v.(*httpBackend)
	}
	return nil
}

// backendPlan is what Apply builds for one backend before committing.
type backendPlan struct {
	b       *Backend
	old     *backendRT // nil: a new backend
	pool    *lb.Pool   // the pool to run: old.pool when kept
	http    *httpBackend
	key     string
	servers []lb.Server
	fresh   bool // a new pool
}

// frontendPlan is what Apply builds for one frontend before committing.
type frontendPlan struct {
	f       *Frontend
	old     *frontendRT // the frontend on the same port, if any
	port    *port       // new port, or old.port
	gen     serverGen   // new server, or old.gen
	newGen  bool
	key     string
	chain   *chain
	h3Later bool // HTTP/3 sockets bound once the old server released them
}

// Apply converges the running load balancer to doc, which must have its
// defaults applied and be valid (Manager does both). See Runtime for what
// is kept and what is rebuilt. On error nothing changed. Apply does not
// retain doc.
func (rt *Runtime) Apply(ctx context.Context, doc *Document) error {
	if len(rt.opts.IPs) == 0 {
		return errors.New("config: the runtime has no IP address to listen on")
	}
	rt.apply.Lock()
	defer rt.apply.Unlock()
	if rt.closed {
		return ErrClosed
	}
	doc = doc.Clone()

	// Build: backends.
	var bplans []*backendPlan
	pools := map[string]*lb.Pool{}
	for i := range doc.Backends {
		b := &doc.Backends[i]
		p := &backendPlan{b: b, old: rt.backends[b.ID], key: poolKey(b, doc.Secrets.StickyCookieSecret), servers: servers(b)}
		if dnsOf(b) != nil && p.old != nil {
			// A rebuilt pool starts with the servers DNS last gave,
			// until its source resolves again.
			p.servers = dnsServers(p.old.pool, b)
		}
		if p.old != nil && p.old.key == p.key {
			// Checked here, since commit cannot fail.
			if err := (&lb.Pool{}).Update(p.servers); err != nil {
				return fmt.Errorf("backend %q: %w", b.ID, err)
			}
			p.pool, p.http = p.old.pool, p.old.http
		} else {
			pool, hb, err := rt.newPool(b, doc)
			if err != nil {
				return err
			}
			if err := pool.Update(p.servers); err != nil {
				return fmt.Errorf("backend %q: %w", b.ID, err)
			}
			if p.old != nil {
				carryStates(p.old, pool)
			}
			p.pool, p.http, p.fresh = pool, hb, true
		}
		pools[b.ID] = p.pool
		bplans = append(bplans, p)
	}

	// Build: certificates.
	custom, acmes, err := rt.buildCerts(doc)
	if err != nil {
		return err
	}
	var acmeList []*acmeCert
	for _, a := range acmes {
		acmeList = append(acmeList, a)
	}

	// Build: frontends, binding the new ports; undone on error.
	var fplans []*frontendPlan
	undo := func() {
		for _, p := range fplans {
			if p.old == nil && p.port != nil {
				p.port.close()
			}
			if g, ok := p.gen.(*httpGen); ok && p.newGen {
				for _, pc := range g.pcs {
					pc.Close()
				}
			}
		}
	}
	for i := range doc.Frontends {
		f := &doc.Frontends[i]
		p, err := rt.planFrontend(ctx, doc, f, pools, custom, acmes, acmeList)
		if p != nil {
			fplans = append(fplans, p)
		}
		if err != nil {
			undo()
			return fmt.Errorf("frontend %q: %w", f.ID, err)
		}
	}

	// Commit: nothing below fails.
	rt.commit(doc, bplans, fplans, acmes)
	return nil
}

// planFrontend builds f's chain, and its port and server when they are new.
func (rt *Runtime) planFrontend(ctx context.Context, doc *Document, f *Frontend, pools map[string]*lb.Pool,
	custom map[string]*customCert, acmes map[string]*acmeCert, acmeList []*acmeCert) (*frontendPlan, error) {
	var httpMode bool
	for i := range doc.Backends {
		if doc.Backends[i].ID == f.BackendID {
			httpMode = doc.Backends[i].ForwardProtocol == ProtocolHTTP
		}
	}
	c := &chain{def: pools[f.BackendID]}
	var err error
	if c.rules, err = compileACLs(doc, f.ID); err != nil {
		return nil, err
	}
	if c.certs, err = certSetOf(f, custom, acmes); err != nil {
		return nil, err
	}
	if httpMode && len(f.CertificateIDs) == 0 {
		c.acme = acmeList // HTTP-01 challenges
	}
	var routes []acl.Route
	for i := range doc.Routes {
		r := &doc.Routes[i]
		if r.FrontendID != f.ID {
			continue
		}
		m, pool := r.Match, pools[r.BackendID]
		switch {
		case m.SNI != nil:
			if c.mux == nil {
				c.mux = &lb.Mux{Default: c.def}
			}
			if err := c.mux.Handle(*m.SNI, pool); err != nil {
				return nil, fmt.Errorf("route %q: %w", r.ID, err)
			}
		case m.HostHeader != nil:
			hosts := []string{*m.HostHeader}
			if m.MatchSubdomains {
				hosts = append(hosts, "*."+*m.HostHeader)
			}
			routes = append(routes, acl.Route{Host: hosts, Pool: pool})
		case m.PathBegin != nil:
			routes = append(routes, acl.Route{PathPrefix: *m.PathBegin, Pool: pool})
		}
	}
	if c.router, err = acl.NewRouter(c.def, routes...); err != nil {
		return nil, err
	}

	p := &frontendPlan{f: f, chain: c, key: serverKey(f, httpMode, doc)}
	rt.mu.RLock()
	p.old = rt.frontends[f.InboundPort]
	rt.mu.RUnlock()
	if p.old != nil {
		p.port = p.old.port
		if p.old.key == p.key {
			p.gen = p.old.gen
			return p, nil
		}
	} else if p.port, err = rt.bindPort(ctx, f.InboundPort, rt.opts.IPs); err != nil {
		return nil, err
	}
	p.newGen = true
	addr := p.port.lns[0].Addr()
	if httpMode {
		g, err := rt.newHTTPGen(f, doc, addr)
		if err != nil {
			return p, err
		}
		p.gen = g
		if g.h3 != nil {
			if old, ok := p.oldGen().(*httpGen); ok && old.h3 != nil {
				p.h3Later = true
			} else if err := g.listenH3(ctx, f.InboundPort); err != nil {
				return p, err
			}
		}
	} else {
		g, err := rt.newTCPGen(f, doc, addr)
		if err != nil {
			return p, err
		}
		p.gen = g
	}
	return p, nil
}

func (p *frontendPlan) oldGen() serverGen {
	if p.old == nil {
		return nil
	}
	return p.old.gen
}

// commit makes the built plans run, and retires what they replace.
func (rt *Runtime) commit(doc *Document, bplans []*backendPlan, fplans []*frontendPlan, acmes map[string]*acmeCert) {
	var retired []*lb.Pool
	var stops []func()
	rt.lbID.Store(doc.LB.ID) // before the new pools' checks report

	// Backends first: the frontends' new chains point at their pools.
	newBackends := map[string]*backendRT{}
	for _, p := range bplans {
		be := p.old
		if p.fresh {
			if be != nil {
				retired = append(retired, be.pool)
				stops = append(stops, be.stop)
			}
			rt.httpBE.Store(p.pool, p.http)
			ctx, cancel := context.WithCancel(rt.ctx)
			pool := p.pool
			rt.wg.Go(func() { pool.Run(ctx) })
			if r, ok := pool.Affinity.(runner); ok { // a shared stick table's writer
				rt.wg.Go(func() { r.Run(ctx) })
			}
			be = &backendRT{id: p.b.ID, name: p.b.Name, key: p.key, pool: p.pool, http: p.http, stop: cancel, ctx: ctx}
		}
		rt.runDNS(be, p.b) // before Update: a source stopped writes no more
		if dnsOf(p.b) == nil && !p.fresh {
			if err := be.pool.Update(p.servers); err != nil {
				rt.logger.Error("updating servers", "backend", be.id, "err", err) // validated in Apply
			}
		}
		newBackends[be.id] = be
	}
	rt.mu.Lock()
	for id, be := range rt.backends {
		if newBackends[id] == nil {
			retired = append(retired, be.pool)
			stops = append(stops, be.stop)
		}
	}
	rt.backends = newBackends
	rt.mu.Unlock()
	for _, p := range bplans {
		rt.applyServerStates(newBackends[p.b.ID], p.b, p.fresh)
	}

	// Frontends.
	newFrontends := map[int32]*frontendRT{}
	for _, p := range fplans {
		fr := &frontendRT{id: p.f.ID, name: p.f.Name, port: p.port, key: p.key, gen: p.gen}
		p.gen.install(p.chain)
		if p.newGen {
			if old := p.oldGen(); old != nil {
				if p.h3Later {
					if og, ok := old.(*httpGen); ok {
						og.h3.Close()
						for _, pc := range og.pcs {
							pc.Close()
						}
						og.pcs = nil
					}
					// Cannot be undone here: see Runtime.
					if err := p.gen.(*httpGen).listenH3(rt.ctx, p.f.InboundPort); err != nil {
						rt.logger.Error("HTTP/3 not served", "frontend", p.f.ID, "err", err)
					}
				}
				p.port.use(p.gen.handoff())
				p.gen.serve()
				rt.drainGen(old)
			} else {
				p.port.use(p.gen.handoff())
				p.gen.serve()
				p.port.start()
			}
		}
		newFrontends[p.f.InboundPort] = fr
	}
	rt.mu.Lock()
	var removed []*frontendRT
	for number, fr := range rt.frontends {
		if newFrontends[number] == nil {
			removed = append(removed, fr)
		}
	}
	rt.frontends = newFrontends
	oldACME := rt.acmes
	rt.acmes = acmes
	rt.doc = doc
	rt.mu.Unlock()
	rt.pruneTickets(rt.ticketSecret(doc))
	for _, fr := range removed {
		fr.port.close()
		rt.drainGen(fr.gen)
	}

	// Retired pools: their health checks stop now; connections open on
	// them continue. The proxies forget them once the requests that may
	// still have picked them are done.
	for _, stop := range stops {
		stop()
	}
	if len(retired) > 0 {
		gens := make([]serverGen, 0, len(newFrontends))
		for _, fr := range newFrontends {
			gens = append(gens, fr.gen)
		}
		rt.wg.Go(func() { // Close stops the wait
			t := time.NewTimer(rt.grace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-rt.ctx.Done():
				return
			}
			for _, p := range retired {
				for _, g := range gens {
					g.forget(p)
				}
				rt.httpBE.Delete(p)
			}
		})
	}

	// Certificates: obtain the new Let's Encrypt ones now that the
	// frontends answer their challenges.
	for id, a := range acmes {
		if oldACME[id] == a {
			continue
		}
		ctx, cancel := context.WithCancel(rt.ctx)
		a.cancel = cancel
		rt.wg.Go(func() { rt.obtain(ctx, a) })
	}
	for id, a := range oldACME {
		if acmes[id] != a && a.cancel != nil {
			a.cancel()
		}
	}
}

// drainGen shuts a server generation down in the background, within the
// drain grace, or until Close ends the runtime's context.
func (rt *Runtime) drainGen(g serverGen) {
	g.handoff().Close()
	rt.wg.Go(func() {
		ctx, cancel := context.WithTimeout(rt.ctx, rt.grace)
		defer cancel()
		g.shutdown(ctx)
	})
}

// Close stops every frontend from accepting, drains their connections
// until ctx ends or for DrainGrace, whichever comes first, then closes
// what is left (servers still draining after an earlier Apply included)
// and stops the health checks. Apply fails after Close.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.apply.Lock()
	defer rt.apply.Unlock()
	if rt.closed {
		return nil
	}
	rt.closed = true
	rt.mu.Lock()
	frontends := rt.frontends
	rt.frontends = map[int32]*frontendRT{}
	rt.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, rt.grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, fr := range frontends {
		fr.port.close()
		fr.gen.handoff().Close()
		wg.Go(func() { fr.gen.shutdown(ctx) })
	}
	wg.Wait()
	rt.cancel()
	rt.wg.Wait()
	return nil
}

// ServerStats reports the servers of the backend id, in pool order, as
// the API's backend-stats list them.
func (rt *Runtime) ServerStats(backendID string) ([]ServerStat, error) {
	rt.mu.RLock()
	be := rt.backends[backendID]
	rt.mu.RUnlock()
	if be == nil {
		return nil, fmt.Errorf("config: no backend %q", backendID)
	}
	be.mu.Lock()
	admin := map[string]serverRT{}
	for ip, s := range be.servers {
		admin[ip] = *s
	}
	be.mu.Unlock()
	var out []ServerStat
	for _, s := range be.pool.Stats().Servers {
		if s.Removed {
			continue
		}
		a, ok := admin[s.Name]
		if !ok { // a server from DNS: its weight is its record's
			a.weight = int32(s.Weight)
		}
		since := s.Since.UTC()
		if a.since.After(since) {
			since = a.since.UTC()
		}
		st := ServerStat{
			BackendID: backendID, IP: s.Name,
			ServerState:           stateWord(s.State, s.Draining),
			ServerStateChangedAt:  &since,
			LastHealthCheckStatus: checkWord(s),
			Weight:                int(a.weight),
			AdminState:            a.admin,
			Active:                s.Cur,
			Reason:                s.Reason,
		}
		if st.AdminState == "" {
			st.AdminState = AdminReady
		}
		out = append(out, st)
	}
	return out, nil
}

// checkWord is the seed's last_health_check_status of a server.
func checkWord(s lb.ServerStats) string {
	switch {
	case s.Health.Last.Time.IsZero():
		return "unknown"
	case s.Health.Last.Passed && s.State == lb.StateGoingUp:
		return "condpass"
	case s.Health.Last.Passed:
		return "passed"
	}
	return "failed"
}

// FrontendSource is what the status page and the metrics collector read a
// frontend from (lb.FrontendStats).
type FrontendSource interface{ Stats() lb.FrontendStats }

// PoolSource is what the status page and the metrics collector read a
// backend from (lb.PoolStats).
type PoolSource interface{ Stats() lb.PoolStats }

// FrontendSources returns a source of statistics for each running
// frontend, keyed by its name (its id too when two share a name). A source
// follows its frontend across Apply while it keeps its port; its counters
// restart when its server is rebuilt. Hosts add the new keys to their
// status page and metrics, and remove the gone ones, after every Apply.
func (rt *Runtime) FrontendSources() map[string]FrontendSource {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	names := map[string]int{}
	for _, fr := range rt.frontends {
		names[fr.name]++
	}
	out := map[string]FrontendSource{}
	for number, fr := range rt.frontends {
		key := fr.name
		if names[key] > 1 {
			key += " (" + fr.id + ")"
		}
		out[key] = frontendSource{rt: rt, port: number, name: fr.name}
	}
	return out
}

// PoolSources returns a source of statistics for each running backend,
// keyed like FrontendSources. A source follows its backend across Apply;
// its counters restart when its pool is rebuilt.
func (rt *Runtime) PoolSources() map[string]PoolSource {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	names := map[string]int{}
	for _, be := range rt.backends {
		names[be.name]++
	}
	out := map[string]PoolSource{}
	for id, be := range rt.backends {
		key := be.name
		if names[key] > 1 {
			key += " (" + id + ")"
		}
		out[key] = poolSource{rt: rt, id: id}
	}
	return out
}

type frontendSource struct {
	rt   *Runtime
	port int32
	name string
}

func (s frontendSource) Stats() lb.FrontendStats {
	s.rt.mu.RLock()
	fr := s.rt.frontends[s.port]
	s.rt.mu.RUnlock()
	if fr == nil {
		return lb.FrontendStats{Name: s.name}
	}
	st := fr.gen.stats()
	st.Name = s.name
	return st
}

type poolSource struct {
	rt *Runtime
	id string
}

func (s poolSource) Stats() lb.PoolStats {
	s.rt.mu.RLock()
	be := s.rt.backends[s.id]
	s.rt.mu.RUnlock()
	if be == nil {
		return lb.PoolStats{Name: s.id}
	}
	return be.pool.Stats()
}

// Pool returns the running pool of backend id, for hosts that act on its
// servers directly; nil when there is none.
func (rt *Runtime) Pool(backendID string) *lb.Pool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if be := rt.backends[backendID]; be != nil {
		return be.pool
	}
	return nil
}

// Addrs returns the listening addresses of the frontend on inbound_port
// port, one per IP; nil when none listens there.
func (rt *Runtime) Addrs(port int32) []net.Addr {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	fr := rt.frontends[port]
	if fr == nil {
		return nil
	}
	out := make([]net.Addr, len(fr.port.lns))
	for i, ln := range fr.port.lns {
		out[i] = ln.Addr()
	}
	return out
}
