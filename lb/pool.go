package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by a Pool.
var (
	// ErrNoServer means no server of the pool is pickable.
	ErrNoServer = errors.New("lb: no server available")
	// ErrQueueTimeout means every candidate server stayed at its MaxConns
	// for the whole QueueTimeout.
	ErrQueueTimeout = errors.New("lb: queue timeout")
)

// Defaults of the Pool's zero-valued fields.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultTunnelTimeout  = 15 * time.Minute
	DefaultQueueTimeout   = 5 * time.Second
	DefaultRetries        = 3
)

// Pool is a set of servers with the policy to balance connections and
// requests over them. It is the standard Backend: ServeConn proxies an L4
// connection to a chosen server; Acquire hands out the decision alone, for
// L7 proxies and custom protocols; DialContext balances client-side.
//
// The zero value is an empty pool that balances by plain weighted rotation
// and considers every server healthy. Configure the exported fields before
// first use and do not change them afterwards; change servers with Update,
// SetState and Drain, which are safe for concurrent use. Anything else (the
// algorithm, say) is changed by building a new Pool and swapping it in a
// Switch.
//
// Picks take no lock: they read an immutable Snapshot through an atomic
// pointer. Writers (Update, SetState, Drain) serialise on one mutex and publish
// a new Snapshot.
type Pool struct {
	// Name identifies the pool in logs, statistics and health-check state.
	Name string

	// Balancer chooses among pickable servers. Nil means a plain weighted
	// rotation (each server gets Weight consecutive turns); the balancer
	// package has smooth round robin, least connections and others.
	Balancer Balancer

	// HealthChecker, when set, is started by Run, watches the pool as a
	// ServerSet and reports server health through SetHealth; it connects
	// to the servers as the pool does (Dial, ProxyHeader) and starts from
	// InitialState. If it implements Observer it also sees every Outcome.
	HealthChecker HealthChecker

	// Affinity, when set, pins clients to servers (sticky sessions).
	Affinity Affinity

	// InitialState is the state of a server when it first joins the pool,
	// for the pool and its HealthChecker alike. The zero value, StateUp,
	// makes new servers pickable until a health check says otherwise;
	// StateDown keeps them out until a check passes.
	InitialState State

	// Dial opens connections to servers. Nil means a net.Dialer with
	// TCPKeepAlive. The context carries the connect timeout.
	Dial DialFunc

	// TCPKeepAlive sets TCP keep-alive probes on the connections the Pool
	// dials to its servers when Dial is nil (a Dial sets its own), for
	// ServeConn, DialContext and ReverseProxy alike; it is HAProxy's
	// "option srvtcpka". The zero value turns them off
	// (net.Dialer{KeepAlive: -1}): the connect, server and tunnel
	// timeouts find a dead server, and probes cost about four
	// setsockopt(2) calls per connection. Enable: true turns them on, with
	// Idle, Interval and Count (zero: Go's 15 s, 15 s and 9; negative: the
	// system's). Health checks keep Go's default. See ListenKeepAlive for
	// the client side.
	TCPKeepAlive net.KeepAliveConfig

	// ProxyHeader, when set, is written first on every new server connection
	// (PROXY protocol).
	ProxyHeader HeaderFunc

	// TLS, when set, encrypts every new server connection that ServeConn
	// and DialContext open (TLS bridging):
	// after the ProxyHeader, as the PROXY protocol requires, the Pool runs a
	// TLS client handshake within the connect timeout; a failed handshake is
	// a connection failure, retried like one. The server certificate is
	// verified unless TLS.InsecureSkipVerify is set. The server name sent
	// and verified comes from TLSServerName, else TLS.ServerName, else the
	// host part of the server's Addr. Nil means plain TCP. The config is
	// not modified; it must not be changed after first use.
	//
	// ReverseProxy does not use it: an HTTP transport encrypts itself (see
	// ReverseProxy.Scheme), and dialing through the Pool stays plain there.
	TLS *tls.Config

	// TLSServerName, when set with TLS, returns the server name for a new
	// connection to s on behalf of the client described by info (nil for
	// DialContext): the client's SNI, say. An empty result falls back to
	// TLS.ServerName, then to the host of s.Addr.
	TLSServerName func(info *ConnInfo, s *Server) string

	// ConnectTimeout bounds each attempt to connect to a server, PROXY
	// header included. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// TunnelTimeout closes an L4 connection after this long without a byte
	// in either direction, and likewise an upgraded HTTP stream (a
	// WebSocket) of a ReverseProxy, or the waits on a client sending a
	// gRPC request. Zero means DefaultTunnelTimeout; negative means never.
	//
	// At L4 it is HAProxy's "timeout tunnel", and stands for "timeout
	// client" and "timeout server" too: a client silent while its server
	// is silent is closed after TunnelTimeout, but one that is silent while
	// its server sends (a one-way stream) is not, as the session is not
	// idle. Before a server is chosen, the TCPFrontend's HandshakeTimeout
	// bounds what the client must send (a ClientHello to peek at), and
	// ConnectTimeout the connection to the server. At L7 the client's own
	// bound is ReverseProxy.ClientTimeout.
	TunnelTimeout time.Duration

	// Retries is how many times a failed connection attempt is retried,
	// on another server when one is pickable (redispatch) or on the same
	// one, as RedispatchEvery says. Connection
	// failures are retried (nothing was sent yet), and, at L7, requests
	// safe to repeat (GET, HEAD, OPTIONS, TRACE or with an Idempotency-Key,
	// without a body) whose server closed or reset the connection before
	// the response headers ended. Zero means DefaultRetries; negative means
	// no retry.
	Retries int

	// RedispatchEvery says which retries go to another server: every
	// retry when it is 0 (the default) or 1; with N above 1, every Nth
	// retry (the Nth, the 2Nth, ...) while the others retry the server
	// that just failed, as HAProxy's "option redispatch N" with N above
	// 1; with a negative value, none: every retry is on the same server
	// (unlike HAProxy, whose negative N counts from the last retry). A
	// redispatched retry avoids every server that failed before, as long
	// as another one is pickable. It is the configuration model's
	// redispatch_attempt_count: unset maps to 0, its 0 ("off": retry the
	// same server) to -1, and N to N. A retry on the same server keeps its
	// slot (MaxConns) and its stickiness; each failed attempt counts in
	// the server's statistics and Observers all the same.
	RedispatchEvery int

	// QueueTimeout bounds the wait for a free slot when servers are at their
	// MaxConns. Zero means DefaultQueueTimeout.
	QueueTimeout time.Duration

	// Fallback serves L4 connections when no server is pickable. Nil means
	// such connections are closed.
	Fallback Backend

	// ShutdownOnDown, when set, closes the open sessions of a server when it
	// goes down (enters StateDown): its L4 connections and upgraded L7
	// streams (WebSockets). By default they continue until they end on their
	// own; only new traffic avoids the server.
	ShutdownOnDown bool

	// Logger receives the pool's events; nil means slog.Default().
	// Per-connection events are logged at Debug level.
	Logger *slog.Logger

	snap    atomic.Pointer[Snapshot]
	byAddr  atomic.Pointer[map[string]*Server] // configured servers by address (the first of each), for dialAddr
	queued  atomic.Int64                       // goroutines waiting in queueWait or Drain
	_       cacheLinePad                       // every pick reads snap; every lease writes traffic
	traffic traffic                            // backend statistics, beside the servers'

	mu      sync.Mutex
	servers []*Server                 // configured, in order
	state   map[string]*serverRuntime // configured and removed-but-busy servers
	version uint64
	changed chan struct{} // closed on membership change
	freed   chan struct{} // closed when a slot is released while someone waits
	rotor   atomic.Uint64 // default balancer
	retired TrafficStats  // counters of the servers removed and forgotten
}

// Update replaces the pool's servers. The whole list is validated first; on
// error nothing changes. Servers are matched by Name: a server that stays
// keeps its health and counters even if its address or weight changed; a new
// one starts in InitialState; a removed one receives no new traffic while its
// open connections finish. Update is safe for concurrent use with traffic.
func (p *Pool) Update(servers []Server) error {
	next := make([]*Server, len(servers))
	seen := make(map[string]bool, len(servers))
	for i, s := range servers {
		if s.Name == "" {
			s.Name = s.Addr
		}
		if err := validate(&s); err != nil {
			return fmt.Errorf("lb: server %d: %w", i, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("lb: server %d: duplicate name %q", i, s.Name)
		}
		seen[s.Name] = true
		s.Meta = cloneMeta(s.Meta)
		next[i] = &s
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.initLocked()
	now := time.Now()
	for _, s := range next {
		rt := p.state[s.Name]
		if rt == nil {
			rt = &serverRuntime{state: p.InitialState, since: now}
			p.state[s.Name] = rt
		}
		if rt.removed {
			rt.removed = false
			rt.draining.Store(false)
		}
		s.rt = rt
	}
	for _, old := range p.servers {
		if !seen[old.Name] {
			old.rt.removed = true
			old.rt.draining.Store(true)
		}
	}
	p.servers = next
	p.publishLocked(true)
	return nil
}

func validate(s *Server) error {
	if s.Addr == "" {
		return errors.New("empty address")
	}
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return fmt.Errorf("address %q: %w", s.Addr, err)
	}
	if s.Weight < 0 {
		return fmt.Errorf("%s: negative weight %d", s.Name, s.Weight)
	}
	if s.MaxConns < 0 {
		return fmt.Errorf("%s: negative MaxConns %d", s.Name, s.MaxConns)
	}
	return nil
}

func cloneMeta(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (p *Pool) initLocked() {
	if p.state == nil {
		p.state = make(map[string]*serverRuntime)
		p.changed = make(chan struct{})
	}
}

// publishLocked builds and stores a new Snapshot. membership reports a
// change of the configured servers, which wakes Members watchers.
func (p *Pool) publishLocked(membership bool) {
	p.initLocked()
	p.version++
	var regular, backup []*Server
	for _, s := range p.servers {
		if !s.rt.state.Pickable() || s.rt.draining.Load() {
			continue
		}
		if s.Backup {
			backup = append(backup, s)
		} else {
			regular = append(regular, s)
		}
	}
	snap := &Snapshot{Servers: regular, Version: p.version, active: &p.traffic.cur}
	if len(regular) == 0 && len(backup) > 0 {
		snap.Servers, snap.Backup = backup, true
	}
	p.prepare(snap)
	p.snap.Store(snap)
	if membership {
		byAddr := make(map[string]*Server, len(p.servers))
		for _, s := range p.servers {
			if _, ok := byAddr[s.Addr]; !ok {
				byAddr[s.Addr] = s
			}
		}
		p.byAddr.Store(&byAddr)
	}
	// Forget removed servers whose last connection has ended.
	for name, rt := range p.state {
		if rt.removed && rt.active.Load() == 0 {
			p.retireLocked(rt)
			delete(p.state, name)
		}
	}
	if membership {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.wakeLocked() // queued work may now have a server
}

func (p *Pool) prepare(s *Snapshot) {
	if len(s.Servers) == 0 {
		return
	}
	if p.Balancer == nil {
		s.cum = cumulativeWeights(s.Servers)
	} else if pr, ok := p.Balancer.(Preparer); ok {
		s.prepared = pr.Prepare(s)
	}
}

// cumulativeWeights returns the running sums of the servers' weights, or nil
// when the weights are all equal (a plain rotation needs none).
func cumulativeWeights(servers []*Server) []int {
	w := servers[0].EffectiveWeight()
	uniform := true
	for _, s := range servers[1:] {
		if s.EffectiveWeight() != w {
			uniform = false
			break
		}
	}
	if uniform {
		return nil
	}
	cum := make([]int, len(servers))
	total := 0
	for i, s := range servers {
		total += s.EffectiveWeight()
		cum[i] = total
	}
	return cum
}

// Snapshot returns the current snapshot of pickable servers. It is never
// nil; it is empty when no server is pickable.
func (p *Pool) Snapshot() *Snapshot {
	if s := p.snap.Load(); s != nil {
		return s
	}
	return &Snapshot{}
}

// *Pool is the ServerSet its HealthChecker watches.
var _ ServerSet = (*Pool)(nil)

// PoolName returns p.Name. Part of ServerSet.
func (p *Pool) PoolName() string { return p.Name }

// CheckConfig returns the pool's Dial, ProxyHeader and InitialState, for
// health checks that connect as the pool does. Part of ServerSet.
func (p *Pool) CheckConfig() CheckConfig {
	return CheckConfig{Dial: p.Dial, ProxyHeader: p.ProxyHeader, InitialState: p.InitialState}
}

// Members returns every configured server in configuration order and a
// channel closed at the next change of membership. Part of ServerSet.
func (p *Pool) Members() ([]*Server, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initLocked()
	return slices.Clone(p.servers), p.changed
}

func (p *Pool) freedLocked() chan struct{} {
	if p.freed == nil {
		p.freed = make(chan struct{})
	}
	return p.freed
}

func (p *Pool) wakeLocked() {
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
}

// release ends one use of s.
func (p *Pool) release(s *Server) {
	p.traffic.cur.Add(-1)
	n := s.rt.active.Add(-1)
	if p.queued.Load() > 0 || (n == 0 && s.rt.draining.Load()) {
		p.mu.Lock()
		p.wakeLocked()
		if n == 0 && s.rt.removed && p.state[s.Name] == s.rt {
			p.retireLocked(s.rt)
			delete(p.state, s.Name)
		}
		p.mu.Unlock()
	}
}

// ServerStatus is the state of one server, as reported by Pool.Status.
type ServerStatus struct {
	Name, Addr string
	Weight     int
	Backup     bool
	State      State
	// Reason is the reason of the last failed health check, empty when none.
	Reason string
	// Since is when State last changed.
	Since    time.Time
	Draining bool
	// Removed reports a server no longer configured whose connections have
	// not all ended yet.
	Removed bool
	// Active counts connections or requests in flight; Total every one
	// since the server joined; Failures the connection attempts that failed.
	Active   int64
	Total    uint64
	Failures uint64
}

// Status reports every configured server in configuration order, then the
// removed servers that still have connections.
func (p *Pool) Status() []ServerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ServerStatus, 0, len(p.state))
	seen := make(map[*serverRuntime]bool, len(p.servers))
	for _, s := range p.servers {
		seen[s.rt] = true
		out = append(out, statusOf(s.Name, s.Addr, s.Weight, s.Backup, s.rt))
	}
	for name, rt := range p.state {
		if !seen[rt] {
			out = append(out, statusOf(name, "", 0, false, rt))
		}
	}
	return out
}

func statusOf(name, addr string, weight int, backup bool, rt *serverRuntime) ServerStatus {
	return ServerStatus{
		Name: name, Addr: addr, Weight: weight, Backup: backup,
		State: rt.state, Reason: rt.reason, Since: rt.since,
		Draining: rt.draining.Load(), Removed: rt.removed,
		Active: rt.active.Load(), Total: rt.total.Load(), Failures: rt.failures.Load(),
	}
}

// Run runs the pool's HealthChecker until ctx is done. Without a
// HealthChecker it just waits for ctx. It returns nil.
func (p *Pool) Run(ctx context.Context) error {
	if p.HealthChecker != nil {
		p.HealthChecker.Watch(ctx, p)
		return nil
	}
	<-ctx.Done()
	return nil
}

// The accessors below resolve the defaults of the Pool's fields, each in one
// place.

// redispatch reports whether retry n (1 for the first) goes to another
// server (RedispatchEvery).
func (p *Pool) redispatch(n int) bool {
	switch e := p.RedispatchEvery; {
	case e == 0 || e == 1:
		return true
	case e < 0:
		return false
	default:
		return n%e == 0
	}
}

// retries is how many times a failed connection attempt is retried: Retries
// with its default applied, 0 for none.
func (p *Pool) retries() int {
	return withDefault(p.Retries, DefaultRetries)
}

func (p *Pool) connectTimeout() time.Duration {
	if p.ConnectTimeout > 0 {
		return p.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// tunnelTimeout is TunnelTimeout with its default applied, 0 for never.
func (p *Pool) tunnelTimeout() time.Duration {
	return withDefault(p.TunnelTimeout, DefaultTunnelTimeout)
}

func (p *Pool) queueTimeout() time.Duration {
	if p.QueueTimeout > 0 {
		return p.QueueTimeout
	}
	return DefaultQueueTimeout
}

func (p *Pool) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// withDefault applies lb's convention for numeric settings: zero means
// def, negative means none (0).
func withDefault[T ~int | ~int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
