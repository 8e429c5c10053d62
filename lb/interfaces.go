package lb

import (
	"context"
	"io"
	"net"
)

// Balancer chooses a server for a new connection or request. It is the one
// interface to implement for a custom algorithm.
//
// Pick is called concurrently from many goroutines and must not block. The
// snapshot holds only pickable servers and is never empty; Pick must return
// one of its Servers, or an error (which the Pool returns as is, wrapped).
// Stateful balancers (a round-robin counter) keep their state in the Balancer
// and use atomics; per-snapshot precomputation belongs in Prepare.
type Balancer interface {
	Pick(s *Snapshot, info PickInfo) (*Server, error)
}

// BalancerFunc adapts a function to the Balancer interface.
type BalancerFunc func(s *Snapshot, info PickInfo) (*Server, error)

// Pick calls f(s, info).
func (f BalancerFunc) Pick(s *Snapshot, info PickInfo) (*Server, error) { return f(s, info) }

// Preparer is implemented by Balancers that precompute per snapshot (a
// weighted schedule, a hash ring). The Pool calls Prepare once for every
// snapshot it publishes, under its write lock, before any Pick on it; the
// result is available to Pick through Snapshot.Prepared.
//
// On slow paths (a retry that avoids failed servers, servers at MaxConns)
// the Pool derives a smaller snapshot for one pick, with the Version of its
// parent, and prepares it too: then Prepare runs without the lock,
// concurrently with other calls, and must be safe for that. Balancers with
// costly preparation can recognise such snapshots by their Version and reuse
// what they built for the parent, as balancer.Hash does.
type Preparer interface {
	Prepare(s *Snapshot) any
}

// Observer is implemented by Balancers and HealthCheckers that learn from real
// traffic (latency-aware balancing, passive health checks). Observe is called
// once per Lease when it ends, concurrently, and must not block.
type Observer interface {
	Observe(s *Server, o Outcome)
}

// ServerSet is the view of a Pool that a HealthChecker works on. *Pool
// implements it.
type ServerSet interface {
	// PoolName identifies the set (the Pool's Name) for logs and state keys.
	PoolName() string
	// Members returns every configured server, pickable or not, in
	// configuration order, and a channel that is closed at the next change of
	// membership.
	Members() ([]*Server, <-chan struct{})
	// SetHealth records a health check verdict for the named server, with
	// the reason of the last failed check (empty when healthy). A server in
	// StateMaintenance keeps that state: maintenance is the host's decision
	// (Pool.SetState), which a verdict never overrides. SetHealth reports
	// false when no server has that name.
	SetHealth(name string, st State, reason string) bool
	// CheckConfig says how the set connects to its servers and in which
	// state new servers join it, so that health checks need not be told
	// again.
	CheckConfig() CheckConfig
}

// CheckConfig is what a HealthChecker takes from the set it watches: a
// Pool's Dial, ProxyHeader and InitialState.
type CheckConfig struct {
	// Dial opens connections to the servers; nil means a net.Dialer.
	Dial DialFunc
	// ProxyHeader, when set, is the PROXY protocol header the servers
	// expect. Checks call it with a nil *ConnInfo, which writes the LOCAL
	// form (see HeaderFunc).
	ProxyHeader HeaderFunc
	// InitialState is the state of a server when it joins the set.
	InitialState State
}

// HealthChecker watches the servers of a set and reports their health through
// SetHealth. Watch runs until ctx is done; Pool.Run calls it.
type HealthChecker interface {
	Watch(ctx context.Context, set ServerSet)
}

// Backend serves client connections: it is to L4 what http.Handler is to
// HTTP. *Pool is the standard Backend; Mux, Switch and the adapters of the
// tlsmode and acl packages compose Backends.
//
// ServeConn owns c: it must close it before returning, or hand it to a
// session that outlives the call and closes it when it ends, as
// [Pool.ServeConn] does with the connections of a [TCPFrontend] that its
// event loop carries. After ServeConn returns, the caller must not read,
// write, close or set deadlines on c (reading c.Info is fine), and must not
// take the return for the end of the session: the TCPFrontend tracks such a
// session until it ends (Shutdown waits for it, Close ends it). A Backend
// that calls another one (Mux, Switch, the adapters of tlsmode and acl)
// returns when the inner ServeConn returns and leaves c alone afterwards.
// ctx is cancelled when the frontend is closed forcibly, which also ends a
// session that outlived ServeConn.
type Backend interface {
	ServeConn(ctx context.Context, c *Conn)
}

// BackendFunc adapts a function to the Backend interface.
type BackendFunc func(ctx context.Context, c *Conn)

// ServeConn calls f(ctx, c).
func (f BackendFunc) ServeConn(ctx context.Context, c *Conn) { f(ctx, c) }

// Frontend accepts client connections on a listener. *TCPFrontend and
// *http.Server both implement it, with net/http's semantics: Serve returns
// ErrFrontendClosed after Shutdown or Close; Shutdown stops accepting and waits
// for open connections to end, until ctx is done; Close ends everything now.
type Frontend interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Affinity pins clients to servers (sticky sessions).
//
// Lookup returns the server the client is pinned to, if it is in the snapshot
// (that is, pickable); the Pool then skips the Balancer. After a pick made
// without a pin, or when the pinned server could not be used, the Pool calls
// Pin with the server it chose. Both are called concurrently.
type Affinity interface {
	Lookup(s *Snapshot, info PickInfo) (*Server, bool)
	Pin(info PickInfo, s *Server)
}

// DialFunc opens a connection to addr on the named network, as
// net.Dialer.DialContext does, within ctx. Pool.Dial is one; a ReverseProxy
// hands one to NewTransport, and a Pool to its HealthChecker (CheckConfig).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// HeaderFunc writes a preamble, such as a PROXY protocol header, at the start
// of every new connection to server s, before any TLS to the server. info
// describes the client connection on whose behalf the connection is opened.
// Called with a nil *ConnInfo, the HeaderFunc writes the header of a
// connection lbkit opens on its own behalf (health checks, client-side dial):
// the writers of package lb/proxyproto then write the LOCAL command (v2) or
// "PROXY UNKNOWN" (v1).
type HeaderFunc func(w io.Writer, info *ConnInfo, s *Server) error
