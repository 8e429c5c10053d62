package lb

import (
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Server is the configuration of one upstream server of a [Pool]: where it
// is and how much traffic it takes, as a "server" line of an HAProxy backend.
// In lb a Server is always an upstream; what accepts clients is a [Frontend]. Callers build Server values and hand them to
// Pool.Update; the Pool keeps its own copies, so a Server value may be reused
// or modified afterwards.
//
// The *Server values found in a Snapshot, a Lease or a Status belong to the
// Pool. They are read-only: their exported fields never change once published
// (a reconfiguration publishes new values), and their runtime counters are read
// through methods that are safe for concurrent use.
type Server struct {
	// Name identifies the server inside its Pool. Runtime state (health, active
	// connections, counters) is keyed by Name and survives reconfiguration.
	// Empty means Addr.
	Name string

	// Addr is the server's network address, "host:port".
	Addr string

	// Weight is the server's relative share of traffic for weighted
	// balancers. Zero means 1; a negative weight is invalid.
	Weight int

	// Backup servers take traffic only while no regular server is pickable.
	Backup bool

	// MaxConns bounds the connections (L4) or requests (L7) in flight to the
	// server. Zero means unlimited. When every candidate is at its limit,
	// new work waits in the Pool's queue.
	MaxConns int

	// Meta carries arbitrary user data (zone, version, health-check
	// settings). lbkit never reads it.
	Meta map[string]string

	rt *serverRuntime // owned by the Pool; nil for values not published by a Pool
}

// serverRuntime is the mutable state behind a published Server. It is shared
// by every published copy of the server with the same Name.
type serverRuntime struct {
	active   atomic.Int64 // connections or requests in flight
	total    atomic.Uint64
	failures atomic.Uint64 // connection failures (dial errors, timeouts)
	draining atomic.Bool   // written under Pool.mu; read by release without it
	sessions sessionSet    // open sessions, tracked when Pool.ShutdownOnDown
	_        cacheLinePad  // balancers read active; tunnels write traffic as bytes move
	traffic  traffic

	// Guarded by Pool.mu.
	state   State
	reason  string
	since   time.Time
	removed bool
	health  healthRecord
}

// Active reports the connections or requests in flight to s. It is safe to
// call concurrently and costs one atomic load. It is 0 for a Server not
// published by a Pool.
func (s *Server) Active() int64 {
	if s.rt == nil {
		return 0
	}
	return s.rt.active.Load()
}

// EffectiveWeight is Weight with the zero value resolved: at least 1.
func (s *Server) EffectiveWeight() int {
	if s.Weight <= 0 {
		return 1
	}
	return s.Weight
}

// Full reports whether s has reached MaxConns.
func (s *Server) Full() bool {
	return s.MaxConns > 0 && s.Active() >= int64(s.MaxConns)
}

// State is the health of a server as the Pool sees it.
type State uint8

// The states of a server. Up and GoingDown servers are pickable; the others
// are not. A HealthChecker moves servers between them; Maintenance is set by
// the host program.
const (
	StateUp          State = iota // healthy
	StateGoingDown                // failing checks, not yet down: still pickable
	StateDown                     // failed: not pickable
	StateGoingUp                  // passing checks, not yet up: not pickable
	StateMaintenance              // taken out by the operator: not pickable
)

var stateNames = [...]string{"up", "going down", "down", "going up", "maintenance"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Pickable reports whether servers in this state receive new traffic.
func (s State) Pickable() bool { return s == StateUp || s == StateGoingDown }

// Snapshot is an immutable view of the servers of a Pool that may receive new
// traffic, in configuration order. Backup servers appear only when no regular
// server is pickable. A Pool publishes a new Snapshot on every change of
// membership, weight or health; picks read it without locking.
//
// A Snapshot handed to Balancer.Pick is never empty.
type Snapshot struct {
	// Servers are the pickable servers in configuration order. Do not modify.
	Servers []*Server

	// Version increases with every snapshot a Pool publishes. Snapshots the
	// Pool derives for one pick (to skip full or failed servers) share the
	// version of their parent.
	Version uint64

	// Backup reports that Servers are backup servers (no regular server is
	// pickable).
	Backup bool

	prepared any
	cum      []int         // default rotation: cumulative weights, nil when all are equal
	active   *atomic.Int64 // the Pool's leases in flight; nil outside a Pool
}

// Prepared returns what the Pool's Balancer returned from Prepare for this
// snapshot, or nil when the Balancer is not a Preparer.
func (s *Snapshot) Prepared() any { return s.prepared }

// Active returns the connections or requests in flight in the Pool that
// published s, on all of its servers: the sum of their Active counts, in
// one atomic load, so that a Balancer needs no O(n) sum. It counts
// servers that are no longer pickable (draining, down) until their leases
// end, and leases being acquired or released may show in a server's count
// a moment before or after they show here. It is 0 for a Snapshot that no
// Pool published.
func (s *Snapshot) Active() int64 {
	if s.active == nil {
		return 0
	}
	return s.active.Load()
}

// Len returns the number of servers in the snapshot.
func (s *Snapshot) Len() int { return len(s.Servers) }

// PickInfo describes what is being balanced. It is passed by value and must
// stay cheap to copy.
type PickInfo struct {
	// Client is the client's address: the socket peer, or the address carried
	// by a trusted PROXY header. Zero when unknown.
	Client netip.AddrPort

	// SNI is the server name the client asked for in its TLS ClientHello, if any.
	SNI string

	// Request is the HTTP request being balanced, nil for L4 traffic.
	// Balancers may read it (header, cookie, URI hashing) but must not modify it.
	Request *http.Request

	// Avoid lists servers that already failed this connection or request. The
	// Pool never offers them to the Balancer again while another server is
	// pickable.
	Avoid []*Server
}

// Outcome reports how the use of a server ended, for Observers and statistics.
type Outcome struct {
	// Err is the error that ended the use of the server, nil on success.
	Err error
	// Connect reports that Err happened while connecting: nothing was sent.
	Connect bool
	// HTTP reports an HTTP round trip; otherwise the use was an L4 stream,
	// whose end errors (a reset by either peer, an idle timeout) say nothing
	// certain about the server.
	HTTP bool
	// Status is the HTTP status of the response, 0 for L4 traffic or when no
	// response arrived.
	Status int
	// Duration is the time from the pick to the end of the use.
	Duration time.Duration
	// Sent and Received count bytes to and from the server, when known.
	Sent, Received int64
}

// Failed reports whether the outcome counts as a failure of the server: a
// connection failure, or an HTTP round trip that got no response for
// another reason than the client's request (ErrBadFraming,
// ErrBodyTooLarge, ErrClientAborted,
// ErrClientTimeout).
func (o Outcome) Failed() bool {
	return o.Err != nil && (o.Connect || o.HTTP && o.Status == 0 && !clientFault(o.Err))
}
