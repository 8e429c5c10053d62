package config

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
	"github.com/lbkit/lbkit/sticky"
	"github.com/lbkit/lbkit/tlsmode"
)

// backendRT is one running backend: its Pool, the settings its HTTP
// transport needs, and the runtime state of its servers beyond the Pool's.
// A backend keeps its Pool, and its backendRT, across Apply while only its
// servers change (poolKey is equal); otherwise a new backendRT with a new
// Pool replaces it. Its fields but servers never change once published.
type backendRT struct {
	id, name string
	key      string // poolKey of the settings the Pool was built with
	pool     *lb.Pool
	http     *httpBackend
	stop     context.CancelFunc // ends the Pool's health checks
	ctx      context.Context    // the Pool's, done at stop

	mu      sync.Mutex
	servers map[string]*serverRT // by IP, as in Backend.Pool
	dns     *dnsRun              // the source of the servers with lbkit.dns
}

// serverRT is what the runtime set on one server, to tell changes apart.
type serverRT struct {
	admin  AdminState
	weight int32
	since  time.Time // of the last admin change
}

// httpBackend is what the L7 path of a frontend needs of a backend beyond
// its Pool: TLS towards the servers, the Host sent, the wait for response
// headers and the failover host.
type httpBackend struct {
	scheme   string      // "http" or "https" (ssl_bridging)
	tls      *tls.Config // towards the servers with "https"
	host     string      // Host header sent (host); empty: the client's
	timeout  time.Duration
	failover *lb.FailoverHost // nil: 503 when no server is up
}

// poolKey renders the backend settings a Pool is built from, that is all of
// them but the servers, their port (forward_port) and their lbkit states,
// weights and backup flags, which Pool.Update and SetState change in
// place. The health check's port is rendered as checkPort, so that a
// check on each server's own port follows forward_port without a new
// Pool. The sticky-cookie secret is part of it, and so is the name, which
// names the Pool.
func poolKey(b *Backend, secret string) string {
	c := *b
	c.Pool, c.Lbkit, c.CreatedAt, c.UpdatedAt = nil, nil, nil, nil
	c.ForwardPort = 0
	if b.HealthCheck != nil {
		hc := *b.HealthCheck
		hc.Port = int32(checkPort(b))
		c.HealthCheck = &hc
	}
	j, err := json.Marshal(struct {
		B      Backend
		Secret string
	}{c, secret})
	if err != nil {
		panic(fmt.Sprintf("config: a backend does not encode: %v", err))
	}
	return string(j)
}

// newPool builds the Pool of b, without servers.
func (rt *Runtime) newPool(b *Backend, doc *Document) (*lb.Pool, *httpBackend, error) {
	algo, err := balancer.ByName(string(b.ForwardPortAlgorithm))
	if err != nil {
		return nil, nil, fmt.Errorf("backend %q: %w", b.ID, err)
	}
	logger := rt.logger.With("backend", b.ID)
	pool := &lb.Pool{
		Name:            b.Name,
		Balancer:        algo,
		ConnectTimeout:  b.TimeoutConnect.D(),
		TunnelTimeout:   nonZero(b.TimeoutTunnel.D()),
		Retries:         retries(*b.MaxRetries),
		RedispatchEvery: redispatchEvery(b.RedispatchAttemptCount),
		QueueTimeout:    max(b.TimeoutQueue.D(), time.Millisecond),
		ShutdownOnDown:  b.OnMarkedDownAction == OnMarkedDownShutdownSessions,
		TCPKeepAlive:    rt.opts.ServerTCPKeepAlive,
		Logger:          logger,
	}
	switch b.ProxyProtocol {
	case ProxyProtocolV1:
		pool.ProxyHeader = proxyproto.V1()
	case ProxyProtocolV2:
		pool.ProxyHeader = proxyproto.V2(proxyproto.V2Options{})
	case ProxyProtocolV2SSL:
		pool.ProxyHeader = proxyproto.V2(proxyproto.V2Options{SSL: true})
	case ProxyProtocolV2SSLCN:
		pool.ProxyHeader = proxyproto.V2(proxyproto.V2Options{SSL: true, CN: true})
	}
	var host string
	if b.Host != nil {
		host = *b.Host
	}
	var upTLS *tls.Config // towards the servers, when bridging
	if *b.SSLBridging {
		up := tlsmode.Upstream{RootCAs: rt.opts.TLSClientRoots, ServerName: hostOnly(host), InsecureSkipVerify: *b.IgnoreSSLServerVerify}
		upTLS = up.ClientConfig()
		if b.ForwardProtocol == ProtocolTCP {
			up.Bridge(pool)
		}
	}
	switch b.StickySessions {
	case StickyCookie:
		c := &sticky.Cookie{Cookie: http.Cookie{Name: b.StickySessionsCookieName, Path: "/", HttpOnly: true}, Logger: logger}
		if s := doc.Secrets.StickyCookieSecret; s != "" {
			c.Keys = []sticky.Key{{Secret: []byte(s)}}
		} else {
			c.Keys = []sticky.Key{{Secret: rt.cookieSecret}}
		}
		if err := c.Validate(); err != nil {
			return nil, nil, fmt.Errorf("backend %q: sticky cookie: %w", b.ID, err)
		}
		pool.Affinity = c
	case StickyTable:
		if rt.opts.Shared == nil {
			pool.Affinity = &sticky.SourceIP{}
			break
		}
		a, err := rt.opts.Shared.StickyTable(b.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("backend %q: shared stick table: %w", b.ID, err)
		}
		pool.Affinity = a
	}
	probe, err := rt.probe(b, upTLS)
	if err != nil {
		return nil, nil, err
	}
	hc := b.HealthCheck
	id, name := b.ID, b.Name
	pool.HealthChecker = &health.Monitor{
		Probe:             probe,
		Interval:          hc.CheckDelay.D(),
		TransientInterval: hc.TransientCheckDelay.D(),
		Timeout:           hc.CheckTimeout.D(),
		Fall:              int(hc.CheckMaxRetries),
		Rise:              DefaultCheckRise,
		Port:              checkPort(b),
		NoProxyHeader:     !hc.CheckSendProxy,
		Logger:            logger,
		OnChange: func(e health.Event) {
			rt.healthEvent(id, name, e)
		},
	}
	hb := &httpBackend{scheme: "http", host: host, timeout: b.TimeoutServer.D()}
	if b.ForwardProtocol == ProtocolHTTP {
		if *b.SSLBridging {
			hb.scheme, hb.tls = "https", upTLS
		}
		if b.FailoverHost != nil {
			if hb.failover, err = lb.NewFailoverHost(*b.FailoverHost, rt.failoverTLS(), logger); err != nil {
				return nil, nil, fmt.Errorf("backend %q: failover_host: %w", b.ID, err)
			}
		}
	}
	return pool, hb, nil
}

// checkPort is the port of b's health checks: 0, each server's own port
// (which follows forward_port, and SRV records give servers from DNS),
// when health_check.port is unset or forward_port; else health_check.port.
func checkPort(b *Backend) int {
	if b.HealthCheck.Port == b.ForwardPort {
		return 0
	}
	return int(b.HealthCheck.Port)
}

// failoverTLS is the TLS configuration towards https failover hosts.
func (rt *Runtime) failoverTLS() *tls.Config {
	if rt.opts.TLSClientRoots == nil {
		return nil
	}
	return &tls.Config{RootCAs: rt.opts.TLSClientRoots}
}

// probe builds the active check of b; upTLS is the TLS towards the servers
// when the backend bridges, which TCP and HTTP checks then speak.
func (rt *Runtime) probe(b *Backend, upTLS *tls.Config) (health.Probe, error) {
	hc := b.HealthCheck
	status := func(code *int32) [2]int {
		if code == nil {
			return [2]int{}
		}
		return [2]int{int(*code), int(*code)}
	}
	switch {
	case hc.HTTPConfig != nil:
		c := hc.HTTPConfig
		// Over the backend's TLS when it bridges: its servers speak TLS.
		return health.HTTP{Method: c.Method, Path: c.URI, Host: c.HostHeader, Status: status(c.Code), TLS: upTLS}, nil
	case hc.HTTPSConfig != nil:
		c := hc.HTTPSConfig
		cfg := tlsmode.Upstream{RootCAs: rt.opts.TLSClientRoots, ServerName: c.SNI, InsecureSkipVerify: *b.IgnoreSSLServerVerify}.ClientConfig()
		return health.HTTP{Method: c.Method, Path: c.URI, Host: c.HostHeader, Status: status(c.Code), TLS: cfg}, nil
	case hc.MySQLConfig != nil:
		return health.MySQL{User: hc.MySQLConfig.User}, nil
	case hc.PgSQLConfig != nil:
		return health.PostgreSQL{User: hc.PgSQLConfig.User}, nil
	case hc.RedisConfig != nil:
		return health.Redis{}, nil
	case hc.LDAPConfig != nil:
		return health.LDAP{}, nil
	}
	return health.TCP{TLS: upTLS}, nil
}

// servers returns the lb servers of b: each pool IP at forward_port, named
// by its IP so that a change of port keeps its state, with the weight,
// backup flag and per-server limit of the document. A weight of 0 is
// served as a drain (see applyServerStates).
func servers(b *Backend) []lb.Server {
	ext := serverExtensions(b)
	out := make([]lb.Server, 0, len(b.Pool))
	for _, ip := range b.Pool {
		s := lb.Server{Name: ip, Addr: net.JoinHostPort(ip, strconv.Itoa(int(b.ForwardPort)))}
		if x, ok := ext[addrKey(ip)]; ok {
			if x.Weight != nil && *x.Weight > 0 {
				s.Weight = int(*x.Weight)
			}
			s.Backup = x.Backup
		}
		if b.MaxConnections != nil {
			s.MaxConns = int(*b.MaxConnections)
		}
		out = append(out, s)
	}
	return out
}

// addrKey is ip as lbkit.servers entries and pool entries are matched: as
// addresses (2001:DB8::1 is 2001:db8::1), as validation compares them.
func addrKey(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.String()
	}
	return ip
}

// serverExtensions returns b's lbkit.servers by addrKey.
func serverExtensions(b *Backend) map[string]ServerExtension {
	ext := map[string]ServerExtension{}
	if b.Lbkit != nil {
		for _, x := range b.Lbkit.Servers {
			ext[addrKey(x.IP)] = x
		}
	}
	return ext
}

// wantedState is the runtime state the document asks of a server: its
// admin state, with a weight of 0 served as a drain.
func wantedState(x ServerExtension) (AdminState, int32) {
	w := int32(1)
	if x.Weight != nil {
		w = *x.Weight
	}
	st := x.AdminState
	if st == "" {
		st = AdminReady
	}
	if st == AdminReady && w == 0 {
		st = AdminDrain
	}
	return st, w
}

// applyServerStates brings the admin states of be's servers to what b
// says, emitting a ServerEvent for each change. fresh reports a new Pool,
// whose servers all start ready.
func (rt *Runtime) applyServerStates(be *backendRT, b *Backend, fresh bool) {
	ext := serverExtensions(b)
	be.mu.Lock()
	if fresh || be.servers == nil {
		be.servers = map[string]*serverRT{}
	}
	for ip := range be.servers {
		if !slices.Contains(b.Pool, ip) {
			delete(be.servers, ip)
		}
	}
	type change struct {
		ip       string
		from, to AdminState
	}
	var changes []change
	for _, ip := range b.Pool {
		want, w := wantedState(ext[addrKey(ip)])
		cur := be.servers[ip]
		if cur == nil {
			cur = &serverRT{admin: AdminReady, weight: 1}
			be.servers[ip] = cur
		}
		cur.weight = w
		if cur.admin != want {
			changes = append(changes, change{ip, cur.admin, want})
			cur.admin, cur.since = want, time.Now()
		}
	}
	be.mu.Unlock()
	for _, c := range changes {
		from := rt.serverWord(be, c.ip)
		switch c.to {
		case AdminReady:
			if c.from == AdminMaint {
				be.pool.SetState(c.ip, resumedState(be.pool, c.ip), "")
			}
			be.pool.Undrain(c.ip)
		case AdminDrain:
			if c.from == AdminMaint {
				be.pool.SetState(c.ip, resumedState(be.pool, c.ip), "")
			}
			drain(be.pool, c.ip)
		case AdminMaint:
			be.pool.Undrain(c.ip)
			be.pool.SetState(c.ip, lb.StateMaintenance, "maintenance")
		}
		to := rt.serverWord(be, c.ip)
		rt.emit(ServerEvent{BackendID: be.id, BackendName: be.name, IP: c.ip, From: from, To: to, Reason: "admin state " + string(c.to)})
	}
}

// carryStates gives the servers of a rebuilt pool the states of old's that
// keep them out of traffic, rather than InitialState: down (until their
// checks on the new pool pass) and maintenance set on the pool directly.
// Maintenance from the document's admin states is left to
// applyServerStates, which applies the new document's.
func carryStates(old *backendRT, pool *lb.Pool) {
	old.mu.Lock()
	byDoc := map[string]bool{}
	for ip, s := range old.servers {
		byDoc[ip] = s.admin == AdminMaint
	}
	old.mu.Unlock()
	for _, s := range old.pool.Stats().Servers {
		switch {
		case s.Removed:
		case s.State == lb.StateDown:
			pool.SetHealth(s.Name, lb.StateDown, s.Reason)
		case s.State == lb.StateMaintenance && !byDoc[s.Name]:
			pool.SetState(s.Name, lb.StateMaintenance, s.Reason)
		}
	}
}

// drain marks the named server draining without waiting for it to empty.
func drain(p *lb.Pool, name string) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Drain(ctx, name) // returns at once: ctx is done
}

// resumedState is the state a server leaving maintenance returns to: down
// when its last health check failed, else up; the health checks correct
// it from there.
func resumedState(p *lb.Pool, name string) lb.State {
	for _, s := range p.Stats().Servers {
		if s.Name == name && !s.Removed {
			if !s.Health.Last.Time.IsZero() && !s.Health.Last.Passed {
				return lb.StateDown
			}
			return lb.StateUp
		}
	}
	return lb.StateUp
}

// retries maps max_retries to Pool.Retries: 0 is no retry.
func retries(n int32) int {
	if n == 0 {
		return -1
	}
	return int(n)
}

// redispatchEvery maps redispatch_attempt_count to Pool.RedispatchEvery:
// unset is 0 (every retry moves), 0 is -1 (every retry stays on the same
// server) and N is N.
func redispatchEvery(n *int32) int {
	switch {
	case n == nil:
		return 0
	case *n == 0:
		return -1
	}
	return int(*n)
}

// nonZero maps a document duration of 0 (none) to lb's negative "none".
func nonZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// serverWord is the seed's server_state of the named server of be.
func (rt *Runtime) serverWord(be *backendRT, name string) string {
	for _, s := range be.pool.Status() {
		if s.Name == name && !s.Removed {
			return stateWord(s.State, s.Draining)
		}
	}
	return "stopped"
}

// stateWord maps an lb state to the seed's server_state: stopped,
// starting, running or stopping.
func stateWord(st lb.State, draining bool) string {
	switch st {
	case lb.StateUp:
		if draining {
			return "stopping"
		}
		return "running"
	case lb.StateGoingDown:
		return "stopping"
	case lb.StateGoingUp:
		return "starting"
	}
	return "stopped"
}

func (rt *Runtime) healthEvent(backendID, backendName string, e health.Event) {
	draining := false
	rt.mu.RLock()
	be := rt.backends[backendID]
	rt.mu.RUnlock()
	if be != nil {
		be.mu.Lock()
		if s := be.servers[e.Server]; s != nil {
			draining = s.admin == AdminDrain
		}
		be.mu.Unlock()
	}
	from, to := stateWord(e.From, draining), stateWord(e.To, draining)
	rt.emit(ServerEvent{Time: e.Time, BackendID: backendID, BackendName: backendName, IP: e.Server, From: from, To: to, Reason: e.Reason})
}

func (rt *Runtime) emit(ev ServerEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.LBID = rt.lbID.Load().(string)
	rt.logger.LogAttrs(context.Background(), slog.LevelInfo, "server state",
		slog.String("backend", ev.BackendID), slog.String("ip", ev.IP),
		slog.String("from", ev.From), slog.String("to", ev.To), slog.String("reason", ev.Reason))
	if rt.opts.OnServerEvent != nil {
		rt.opts.OnServerEvent(ev)
	}
}
