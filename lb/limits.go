package lb

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-client table of [Limits].
const (
	// DefaultMaxClients is the number of client addresses a Limits
	// tracks when MaxClients is zero.
	DefaultMaxClients = 100_000
	// DefaultClientIdle is how long a Limits remembers a client without
	// open connections when ClientIdle is zero.
	DefaultClientIdle = time.Minute
)

// Limits are the connection and request limits of one frontend, applied on
// its accept path: HAProxy's frontend maxconn, and the per-client trackers
// of its stick tables (sc_conn_cur, sc_http_req_rate, sc_conn_rate). Every
// limit is off at its zero value; a nil *Limits, the default of the fields
// that take one, costs nothing.
//
// One Limits belongs to one frontend, which may serve several listeners:
// MaxConns bounds them together. Configure the fields before the first
// connection and do not change them afterwards. The methods are safe for
// concurrent use.
//
// # Where the limits apply
//
// MaxConns bounds the connections open at once. At the limit the frontend
// stops accepting: new connections wait in the kernel's accept queue (the
// listen backlog) and are accepted, in order, as open ones close. No
// connection is reset for it.
//
// The per-client limits key clients by their address: IPv4-mapped IPv6
// addresses count as their IPv4 form, and ClientIPv6Prefix groups IPv6
// clients by network. Over ClientMaxConns open connections, or over
// ClientRate (with ClientBurst):
//
//   - at L4 ([TCPFrontend].Limits) the connection is closed as soon as it
//     is accepted; ClientRate counts connections per second.
//   - at L7 ([ReverseProxy].Limits with an [http.Server]) the request is
//     answered 429 Too Many Requests and not forwarded; ClientRate counts
//     requests per second and the response carries Retry-After, the
//     seconds until a request would be let in. On a connection beyond
//     ClientMaxConns every request is answered 429 with Connection: close,
//     so that the client closes it.
//
// Refusals count in the frontend's [FrontendStats].Denied (HAProxy's
// dreq), and at L7 in Responses; an access log records a refused request
// with its 429 and the termination state "PR" (denied by the proxy while
// the request was read). Connections refused at L4 never reach a Backend
// and have no access record.
//
// # Across instances
//
// The client table is per Limits, so per instance: behind DNS or ECMP a
// client reaching N load balancers gets N times ClientRate. Setting
// ClientRater hands the rate decision to an implementation that counts in
// a shared store (lb/redisrate counts in Redis, with a local share as its
// fallback): the table still tracks ClientMaxConns, and ClientRate and
// ClientBurst are then unused.
//
// # Wiring and the order of listeners
//
// The client address is the one the listener returns: set Limits above
// (after) a [github.com/lbkit/lbkit/lb/proxyproto.Listener], which replaces
// the socket's address with the one its header carries, so that the limits
// apply to the real client and not to the load balancer in front. A
// TCPFrontend applies its Limits to the listener it is given, which is
// therefore always the outermost wrapper. An http.Server needs the limits
// at both ends, with the same Limits:
//
//	lim := &lb.Limits{MaxConns: 10000, ClientMaxConns: 100, ClientRate: 50, ClientBurst: 100}
//	proxy := &lb.ReverseProxy{Pool: pool, Limits: lim}
//	srv := &http.Server{Handler: proxy, ConnContext: lim.ConnContext}
//	ln = lim.Listener(ln) // last: after proxyproto.Listener and acl.Listener
//	return lb.Serve(ctx, srv, ln, grace, proxy)
//
// Listener counts connections and bounds them; ConnContext lets the
// proxy's requests know their connection, for ClientMaxConns (request
// rates work without it, keyed by the request's RemoteAddr; without it a
// ClientMaxConns is logged once as not enforced). [ServeTLS] puts TLS
// above Listener, as it should: MaxConns holds connections before any
// handshake is spent on them.
//
// # Design
//
// One value per frontend, with fields named after HAProxy's settings, is
// what an HAProxy or Envoy configuration maps to (a frontend's maxconn and
// its trackers; a listener's connection limit and its local rate limit
// filters), and it keeps the state the limits share (the slots of
// MaxConns, the client table) in one owner. The listener is the right
// place for a frontend-wide bound: not accepting leaves the waiting to the
// kernel, at no cost. The frontend's connection rate (ConnRate, the
// configuration model's connection_rate_limit, HAProxy's "rate-limit
// sessions") is applied there too: Accept waits for a token of the
// frontend's bucket before it accepts the next connection, the same pause
// as MaxConns, so that connections beyond the rate wait in the kernel's
// accept queue and are accepted later, never reset. The wait is shared by
// the frontend's listeners, and Close ends it.
//
// # HTTP/3
//
// HTTP/3 has no accept queue to pause: its QUIC connections all arrive on
// one UDP socket. [Limits.Admit] runs the same admission (a slot, then
// the client's connection count) from quic-go's hook that sees a new
// connection before its handshake
// ([github.com/lbkit/lbkit/lb/http3.Server].Limits), and a connection
// beyond MaxConns or ClientMaxConns is refused there with QUIC's
// CONNECTION_REFUSED instead of waiting: the difference from TCP, where
// MaxConns pauses and only the per-client limits refuse. So is a
// connection beyond ConnRate, when the frontend's bucket is empty: Admit
// cannot pause the UDP socket, and a refused QUIC client may try again.
// Refusals count in LimitStats (Full for MaxConns, ConnRateRefused for
// ConnRate), not in the frontend's Denied. Its
// requests then go through ReverseProxy like any other, with the same
// per-request ClientRate check; a 429 over HTTP/3 carries no Connection
// field, which HTTP/3 forbids.
//
// # The client table
//
// Per-client state lives in a table of at most MaxClients entries, split
// in shards with a lock each so that concurrent connections rarely meet.
// Entries with no open connection expire after ClientIdle (at least the
// time the client's bucket takes to fill up again, so expiring never
// forgives anything). When a shard is full, its least recently used entry
// without open connections is evicted, as HAProxy's stick tables evict
// their oldest entries (entries with open connections are in use and
// stay). When the 16 least recently used entries of a full shard all have
// open connections, the new client is served untracked (HAProxy does not
// track it either) and counted in [LimitStats].Untracked; a MaxClients
// well above MaxConns makes that rare. The table exists only when a
// per-client limit is set.
type Limits struct {
	// MaxConns is the most connections the frontend keeps open at once,
	// over all its listeners; beyond it, accepting pauses: each listener
	// holds the one connection it accepted until a slot frees, the others
	// wait in the kernel's queue, and none is reset. Zero or negative
	// means no limit.
	MaxConns int

	// ConnRate is the frontend's new connections per second, over all
	// its listeners and clients (connection_rate_limit; HAProxy's
	// "rate-limit sessions"), sustained, with ConnBurst above it. Beyond
	// it, accepting pauses until the frontend's bucket has a token (each
	// listener holds the one connection it accepted meanwhile):
	// connections wait in the kernel's accept queue, never reset (Admit,
	// for QUIC, refuses them instead). Zero or negative, the default,
	// means no limit.
	ConnRate float64

	// ConnBurst is the size of the frontend's token bucket for ConnRate:
	// the connections accepted at once after a quiet time. Zero or
	// negative means ConnRate rounded up, and at least 1.
	ConnBurst int

	// ClientMaxConns is the most connections one client may have open.
	// Zero or negative means no limit.
	ClientMaxConns int

	// ClientRate is the rate one client may reach, in requests per second
	// at L7 and connections per second at L4, sustained, with ClientBurst
	// above it. Zero or negative means no limit.
	ClientRate float64

	// ClientBurst is the size of a client's token bucket: the requests
	// (connections) it may make at once after being quiet. Zero or
	// negative means ClientRate rounded up, and at least 1.
	ClientBurst int

	// ClientRater, when set, decides the per-client rate instead of the
	// local token buckets of ClientRate and ClientBurst, which are then
	// not used: a rate shared by several load balancers
	// (github.com/lbkit/lbkit/lb/redisrate). It is asked where ClientRate
	// would be (each request at L7, each connection at L4) with the
	// client's key, and its refusals count as ClientRate's. It is never
	// asked on the accept loop, as it may take a round trip: a
	// TCPFrontend asks it on the connection's own goroutine before the
	// Backend sees the connection (a refused connection is then counted
	// in Denied, not in the frontend's connections), and at L7 each
	// request asks on its own. Nil, the default, means the local buckets.
	ClientRater ClientRater

	// ClientIPv6Prefix, between 1 and 127, keys IPv6 clients by that many
	// leading bits (64: a /64 network is one client), as
	// sticky.SourceIP's IPv6Prefix does. Zero or any other value means the
	// whole address.
	ClientIPv6Prefix int

	// MaxClients bounds the client table. Zero or negative means
	// DefaultMaxClients.
	MaxClients int

	// ClientIdle is how long the table keeps a client with no open
	// connection. Zero or negative means DefaultClientIdle.
	ClientIdle time.Duration

	once        sync.Once
	slots       chan struct{} // nil without MaxConns
	connRate    *rate.Limiter // nil without ConnRate
	rateWaits   atomic.Uint64 // Accept calls that waited for ConnRate
	held        atomic.Int32  // Accept calls waiting for a slot or a token now
	rateRefused atomic.Uint64 // Admit calls refused for ConnRate
	table       *clientTable  // nil without a per-client limit
	now         func() time.Time
	refused     [numLimitReasons]atomic.Uint64
	warned      atomic.Bool // a request without its connection (no ConnContext) was logged
}

// limitReason says which limit refused a connection or a request.
type limitReason uint8

const (
	limitNone        limitReason = iota
	limitClientConns             // ClientMaxConns
	limitClientRate              // ClientRate
	limitMaxConns                // MaxConns, refused by Admit
	numLimitReasons

	limitMisconfigured // not a refusal: ClientMaxConns without ConnContext
)

func (l *Limits) init() {
	l.once.Do(func() {
		if l.now == nil {
			l.now = time.Now
		}
		if l.MaxConns > 0 {
			l.slots = make(chan struct{}, l.MaxConns)
		}
		if l.ClientMaxConns > 0 || l.ClientRate > 0 || l.ClientRater != nil {
			l.table = newClientTable(l)
		}
		if l.ConnRate > 0 {
			l.connRate = rate.NewLimiter(rate.Limit(l.ConnRate), burstFor(l.ConnRate, l.ConnBurst))
		}
	})
}

// LimitStats counts what a Limits refused, by limit. The refusals of a
// listener and of a ReverseProxy also count in that frontend's Denied;
// those of Admit (QUIC) count here only.
type LimitStats struct {
	// Conns is the number of connections holding one of the MaxConns
	// slots (0 without MaxConns); at MaxConns, accepting is paused.
	Conns int
	// ClientConns counts connections (L4) or requests (L7) refused for
	// ClientMaxConns.
	ClientConns uint64
	// ClientRate counts connections (L4) or requests (L7) refused for
	// ClientRate.
	ClientRate uint64
	// Clients is the number of clients in the table now.
	Clients int
	// Untracked counts connections served untracked because the table was
	// full of clients with open connections.
	Untracked uint64
	// Full counts connection attempts that Admit refused because MaxConns
	// connections were open (QUIC: each Initial packet of an attempt
	// counts, and so at ClientConns). Listeners never refuse for
	// MaxConns: they pause instead.
	Full uint64
	// ConnRateWaits counts the times a listener's accepted connection
	// waited for a token of ConnRate: the pauses of the rate limit.
	ConnRateWaits uint64
	// ConnRateRefused counts connection attempts that Admit (QUIC)
	// refused because the ConnRate bucket was empty.
	ConnRateRefused uint64
}

// Holding reports whether a listener of l is holding back connections
// now, on purpose: an accepted connection waits for one of the MaxConns
// slots or for a token of ConnRate, and new ones wait in the kernel's
// queue behind it. A
// health check that connects to the frontend should not count a slow
// accept against it then.
func (l *Limits) Holding() bool { return l.held.Load() > 0 }

// Stats returns what l refused so far and the size of its client table.
func (l *Limits) Stats() LimitStats {
	l.init()
	s := LimitStats{
		Conns:       len(l.slots),
		ClientConns: l.refused[limitClientConns].Load(),
		ClientRate:  l.refused[limitClientRate].Load(),
		Full:        l.refused[limitMaxConns].Load(),

		ConnRateWaits:   l.rateWaits.Load(),
		ConnRateRefused: l.rateRefused.Load(),
	}
	if t := l.table; t != nil {
		s.Clients = t.len()
		s.Untracked = t.untracked.Load()
	}
	return s
}

// Listener returns ln with the limits applied to what it accepts, for an
// http.Server: Accept waits while MaxConns connections are open and for a
// token of ConnRate, and every
// connection counts for its client until it is closed. Connections beyond
// a client's limits are returned all the same, marked, for ReverseProxy to
// answer 429 (with ConnContext on the server). A TCPFrontend does this
// itself, refusing such connections: give it Limits instead.
//
// Closing the returned listener closes ln and ends the Accept calls that
// wait.
func (l *Limits) Listener(ln net.Listener) net.Listener {
	return l.listener(ln, nil)
}

// listener wraps ln; with fe set, connections beyond a client's limits are
// closed at once and counted on fe (L4).
func (l *Limits) listener(ln net.Listener, fe *frontendStats) net.Listener {
	l.init()
	return &limitListener{Listener: ln, l: l, fe: fe, done: make(chan struct{})}
}

// ConnContext is an http.Server.ConnContext hook that lets the requests of
// a connection accepted through Listener find it, so that ReverseProxy
// answers those of a connection beyond ClientMaxConns with 429. It returns
// ctx unchanged for other connections. To combine it with another hook,
// call one on the context the other returns.
func (l *Limits) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc := findLimitedConn(c); lc != nil && lc.l == l {
		return context.WithValue(ctx, limitConnKey{}, lc)
	}
	return ctx
}

type limitConnKey struct{}

// findLimitedConn finds the *limitedConn under c; nil if there is none.
func findLimitedConn(c net.Conn) *limitedConn { return connUnder[*limitedConn](c) }

// burstFor is a token bucket's size: burst, or by default the rate rounded
// up, at least 1.
func burstFor(rate float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(rate)))
}

// limitListener applies a Limits to the connections of a listener.
type limitListener struct {
	net.Listener
	l    *Limits
	fe   *frontendStats // L4: refuse and count here; nil at L7
	done chan struct{}
	once sync.Once
}

// Accept accepts a connection, then takes one of the MaxConns slots and a
// token of ConnRate for it, waiting for them while the connection waits
// unanswered (as it would in the kernel's queue), and admits it. Taking
// them only for an accepted connection keeps an idle listener from
// holding a slot or a token that another listener of the frontend, or
// Admit (QUIC), needs.
func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := ll.hold(); err != nil {
			c.Close()
			return nil, err
		}
		lc := ll.l.admit(c, c.RemoteAddr(), ll.fe != nil)
		if ll.fe != nil && lc.over != limitNone {
			ll.l.refused[lc.over].Add(1)
			ll.fe.denied.Add(1)
			lc.Close()
			continue
		}
		return lc, nil
	}
}

// hold takes a MaxConns slot and a ConnRate token for an accepted
// connection, waiting for them unless the listener is closed first.
func (ll *limitListener) hold() error {
	if ll.l.slots != nil {
		select {
		case ll.l.slots <- struct{}{}:
		default:
			ll.l.held.Add(1)
			select {
			case ll.l.slots <- struct{}{}:
			case <-ll.done:
				ll.l.held.Add(-1)
				return net.ErrClosed
			}
			ll.l.held.Add(-1)
		}
	}
	if err := ll.waitRate(); err != nil {
		ll.l.releaseSlot()
		return err
	}
	return nil
}

// waitRate waits for a token of ConnRate: it reserves one, and sleeps
// until it is due unless the listener is closed first (then the token is
// given back).
func (ll *limitListener) waitRate() error {
	lim := ll.l.connRate
	if lim == nil {
		return nil
	}
	now := ll.l.now()
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	ll.l.held.Add(1) // before the count: whoever sees the wait sees the hold
	defer ll.l.held.Add(-1)
	ll.l.rateWaits.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ll.done:
		r.CancelAt(ll.l.now())
		return net.ErrClosed
	}
}

// Close ends the Accept calls waiting for a slot or a token and closes the
// listener.
func (ll *limitListener) Close() error {
	ll.once.Do(func() { close(ll.done) })
	return ll.Listener.Close()
}

func (l *Limits) releaseSlot() {
	if l.slots != nil {
		<-l.slots
	}
}

// admit counts c, whose client is at remote, for its client and decides
// whether it is over a per-client limit: ClientMaxConns, and at L4
// ClientRate. c is nil for a QUIC connection (Admit).
func (l *Limits) admit(c net.Conn, remote net.Addr, l4 bool) *limitedConn {
	lc := &limitedConn{Conn: c, l: l}
	t := l.table
	if t == nil {
		return lc
	}
	key, ok := t.key(AddrPortOf(remote).Addr())
	if !ok {
		return lc
	}
	now := l.now()
	e, conns := t.open(key, now)
	if e == nil {
		return lc
	}
	lc.client = e
	switch {
	case l.ClientMaxConns > 0 && conns > int64(l.ClientMaxConns):
		lc.over = limitClientConns
	case l4 && l.ClientRater != nil:
		// A ClientRater may take a round trip: the connection's own
		// goroutine asks it (decideRate), never the accept loop.
		lc.rateKey, lc.rateDue = key, true
	case l4:
		if ok, _ := l.allowRate(context.Background(), key, e, now); !ok {
			lc.over = limitClientRate
		}
	}
	return lc
}

// decideRate asks the ClientRater about a connection admit left to it
// (L4), on the connection's own goroutine, and reports whether it may be
// served; a refusal counts as ClientRate's. Without a pending decision it
// reports true.
func (c *limitedConn) decideRate(ctx context.Context) bool {
	if !c.rateDue {
		return true
	}
	c.rateDue = false
	if ok, _ := c.l.ClientRater.Allow(ctx, c.rateKey); ok {
		return true
	}
	c.l.refused[limitClientRate].Add(1)
	return false
}

// allowRate applies ClientRate, or ClientRater, to one request (L7) or
// connection (L4) of the client key, whose entry is e (nil when
// untracked). retry is the wait before one would pass, 0 when unknown.
func (l *Limits) allowRate(ctx context.Context, key netip.Addr, e *clientEntry, now time.Time) (ok bool, retry time.Duration) {
	if l.ClientRater != nil {
		return l.ClientRater.Allow(ctx, key)
	}
	if e == nil || e.limiter == nil || e.limiter.AllowN(now, 1) {
		return true, 0
	}
	tokens := e.limiter.TokensAt(now)
	return false, time.Duration((1 - tokens) / l.ClientRate * float64(time.Second))
}

// limitedConn is a connection accepted through a limitListener, or
// admitted by Admit (then Conn is nil): it holds a slot and counts for its
// client until closed (released).
type limitedConn struct {
	net.Conn
	l      *Limits
	client *clientEntry // nil when untracked
	over   limitReason  // the per-client limit it is beyond
	// rateDue: the ClientRater has yet to decide on this L4 connection
	// for rateKey (decideRate, on the connection's goroutine).
	rateDue bool
	rateKey netip.Addr
	closed  atomic.Bool
}

// Close closes the connection and gives back its slot and its count.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// release gives back the connection's slot and its count, once.
func (c *limitedConn) release() {
	if !c.closed.Swap(true) {
		if c.client != nil {
			c.l.table.close(c.client, c.l.now())
		}
		c.l.releaseSlot()
	}
}

// Busy reports whether a connection from remote would take at least half
// of what the limits allow: MaxConns over all clients, or ClientMaxConns
// for remote's client. A QUIC frontend asks it before Admit to decide
// whether to validate a client's address first (a Retry): Admit sees the
// address of a packet, which anyone may forge, so without validation
// forged packets could take slots in the name of others until their
// handshakes time out. Asking only when busy keeps the extra round trip
// off a frontend with room.
func (l *Limits) Busy(remote net.Addr) bool {
	l.init()
	if l.slots != nil && 2*len(l.slots) >= l.MaxConns {
		return true
	}
	t := l.table
	if t == nil || l.ClientMaxConns <= 0 {
		return false
	}
	key, ok := t.key(AddrPortOf(remote).Addr())
	return ok && 2*t.conns(key) >= int64(l.ClientMaxConns)
}

// ErrLimited is the error of [Limits.Admit] for a connection beyond
// MaxConns, ClientMaxConns or ConnRate.
var ErrLimited = errors.New("lb: connection limit reached")

// Admit applies MaxConns and ClientMaxConns to a new connection from
// remote on a frontend that has no accept queue to pause: HTTP/3, whose
// QUIC connections all arrive on one UDP socket
// ([github.com/lbkit/lbkit/lb/http3.Server].Limits calls it from quic-go's
// hook for new connections, before their handshake). It returns an error
// wrapping ErrLimited, and counts the refusal in [LimitStats], when
// MaxConns connections are open, the client has ClientMaxConns open, or
// ConnRate has no token left:
// the caller refuses the connection (QUIC's CONNECTION_REFUSED). It does
// not wait for a slot, as a listener would.
//
// Otherwise the connection holds a slot and counts for its client until
// ctx is done: ctx must be the connection's context, cancelled when it
// ends (or its handshake fails). The returned context, derived from ctx,
// is to be the parent of its requests' contexts: it lets ReverseProxy
// count their rate against the client's entry, as ConnContext does for a
// listener's connections. ClientRate is not applied here: it applies to
// each request, in ReverseProxy.
func (l *Limits) Admit(ctx context.Context, remote net.Addr) (context.Context, error) {
	l.init()
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			l.refused[limitMaxConns].Add(1)
			return ctx, fmt.Errorf("%w: %d connections open (MaxConns)", ErrLimited, l.MaxConns)
		}
	}
	if l.connRate != nil && !l.connRate.AllowN(l.now(), 1) {
		l.releaseSlot()
		l.rateRefused.Add(1)
		return ctx, fmt.Errorf("%w: more than %v connections per second (ConnRate)", ErrLimited, l.ConnRate)
	}
	lc := l.admit(nil, remote, false)
	if lc.over != limitNone {
		l.refused[lc.over].Add(1)
		lc.release()
		return ctx, fmt.Errorf("%w: %s has %d connections open (ClientMaxConns)", ErrLimited, remote, l.ClientMaxConns)
	}
	context.AfterFunc(ctx, lc.release)
	return context.WithValue(ctx, limitConnKey{}, lc), nil
}

// Unwrap returns the connection underneath, so that an L4 copy can reach
// the socket (and splice); closing the limitedConn still releases it.
func (c *limitedConn) Unwrap() net.Conn { return c.Conn }

// TakeBuffered returns nothing: a limitedConn buffers no bytes. With
// Unwrap it lets the L4 copy peel it like the other layers.
func (c *limitedConn) TakeBuffered() []byte { return nil }

// CloseWrite half-closes the connection underneath when it can.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// checkRequest applies the per-client limits to an HTTP request: its
// connection's verdict, then the client's request rate. retry is the wait
// before a request would pass the rate, 0 when unknown.
//
// The first request that cannot find its connection while ClientMaxConns
// is set (no ConnContext) returns limitMisconfigured when it passes, for
// the caller to log.
func (l *Limits) checkRequest(r *http.Request) (reason limitReason, retry time.Duration) {
	l.init()
	t := l.table
	if t == nil {
		return limitNone, 0
	}
	lc, _ := r.Context().Value(limitConnKey{}).(*limitedConn)
	if lc == nil && l.ClientMaxConns > 0 && !l.warned.Load() && !l.warned.Swap(true) {
		reason = limitMisconfigured
	}
	if lc != nil && lc.over == limitClientConns {
		l.refused[limitClientConns].Add(1)
		return limitClientConns, 0
	}
	if l.ClientRate <= 0 && l.ClientRater == nil {
		return reason, 0
	}
	now := l.now()
	var e *clientEntry
	var key netip.Addr
	if lc != nil {
		if e = lc.client; e != nil {
			key = e.key
		}
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		var ok bool
		if key, ok = t.key(ap.Addr()); ok {
			e = t.touch(key, now)
		}
	}
	if !key.IsValid() {
		return reason, 0
	}
	ok, retry := l.allowRate(r.Context(), key, e, now)
	if ok {
		return reason, 0
	}
	l.refused[limitClientRate].Add(1)
	return limitClientRate, retry
}

// limitRequest applies p.Limits to r. It answers 429 and returns false
// when a limit refuses r.
func (p *ReverseProxy) limitRequest(w http.ResponseWriter, r *http.Request) bool {
	reason, retry := p.Limits.checkRequest(r)
	switch reason {
	case limitNone:
		return true
	case limitMisconfigured:
		p.logger().LogAttrs(r.Context(), slog.LevelWarn,
			"lb: Limits.ClientMaxConns needs the http.Server to take its connections from Limits.Listener, with Limits.ConnContext; connections per client are not limited",
			slog.String("frontend", p.Name))
		return true
	}
	p.stats.denied.Add(1)
	p.stats.responses.count(http.StatusTooManyRequests)
	if p.traced() {
		if st := accessFrom(r.Context()); st != nil {
			st.denied = true
		}
	}
	h := w.Header()
	if retry > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retry.Seconds())), 10))
	}
	if reason == limitClientConns && r.ProtoMajor == 1 {
		h.Set("Connection", "close")
	}
	if IsGRPC(r) {
		// UNAVAILABLE, as the gRPC specification maps 429: clients
		// retry it with backoff.
		WriteGRPCError(w, r, GRPCCodeForStatus(http.StatusTooManyRequests), http.StatusText(http.StatusTooManyRequests))
		return false
	}
	http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
	return false
}

// maxClientShards bounds the shards of a client table; each shard holds at
// least minClientsPerShard entries, so small tables have fewer shards.
const (
	maxClientShards    = 64
	minClientsPerShard = 16
	evictScan          = 16 // entries looked at from the LRU end for one to evict
)

// clientTable is the per-client state of a Limits.
type clientTable struct {
	shards    []clientShard
	perShard  int
	idle      time.Duration
	prefix6   int
	rate      rate.Limit
	burst     int
	seed      uint64
	shift     uint // 64 - log2(len(shards))
	untracked atomic.Uint64
}

// clientShard is a part of the table with its lock, its map and its list
// of entries from the most to the least recently used.
type clientShard struct {
	mu  sync.Mutex
	m   map[netip.Addr]*clientEntry
	lru list.List // of *clientEntry, the most recently used first
	_   cacheLinePad
}

// clientEntry is one client's state. conns, last and the links are
// guarded by the shard's lock; limiter has its own.
type clientEntry struct {
	key     netip.Addr
	conns   int64
	last    time.Time // when the client was last seen
	limiter *rate.Limiter
	elem    *list.Element // in the shard's lru
}

func newClientTable(l *Limits) *clientTable {
	maxClients := l.MaxClients
	if maxClients <= 0 {
		maxClients = DefaultMaxClients
	}
	n := 1
	for n*2 <= maxClientShards && n*2*minClientsPerShard <= maxClients {
		n *= 2
	}
	t := &clientTable{
		shift:    uint(64 - bits.TrailingZeros(uint(n))),
		shards:   make([]clientShard, n),
		perShard: maxClients / n,
		idle:     l.ClientIdle,
		prefix6:  l.ClientIPv6Prefix,
	}
	if t.idle <= 0 {
		t.idle = DefaultClientIdle
	}
	if l.ClientRate > 0 && l.ClientRater == nil {
		t.rate = rate.Limit(l.ClientRate)
		t.burst = burstFor(l.ClientRate, l.ClientBurst)
		// Forgetting a client earlier than its bucket refills would
		// forgive it.
		refill := time.Duration(float64(t.burst) / l.ClientRate * float64(time.Second))
		t.idle = max(t.idle, refill)
	}
	var seed [8]byte
	rand.Read(seed[:])
	t.seed = binary.LittleEndian.Uint64(seed[:])
	for i := range t.shards {
		t.shards[i].m = make(map[netip.Addr]*clientEntry)
	}
	return t
}

// key returns the table key of a client address: unmapped, and masked to
// the IPv6 prefix; false for an invalid address.
func (t *clientTable) key(a netip.Addr) (netip.Addr, bool) {
	if !a.IsValid() {
		return a, false
	}
	a = a.Unmap().WithZone("")
	if a.Is6() && t.prefix6 > 0 && t.prefix6 < 128 {
		if p, err := a.Prefix(t.prefix6); err == nil {
			a = p.Addr()
		}
	}
	return a, true
}

func (t *clientTable) shard(key netip.Addr) *clientShard {
	if len(t.shards) == 1 {
		return &t.shards[0]
	}
	// Multiplication carries low bits up: the top bits of the result
	// depend on every bit of the address.
	b := key.As16()
	h := (binary.LittleEndian.Uint64(b[:8]) ^ t.seed) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(b[8:])) * 0xbf58476d1ce4e5b9
	return &t.shards[h>>t.shift]
}

// open counts a new connection of the client key at now and returns its
// entry and its open connections, this one included; nil when the table
// is full of clients with open connections.
func (t *clientTable) open(key netip.Addr, now time.Time) (*clientEntry, int64) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := t.getLocked(s, key, now)
	if e == nil {
		t.untracked.Add(1)
		return nil, 0
	}
	e.conns++
	return e, e.conns
}

// touch returns the entry of the client key, created if needed, marked
// as seen at now; nil when the table is full.
func (t *clientTable) touch(key netip.Addr, now time.Time) *clientEntry {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.getLocked(s, key, now)
}

// conns returns the open connections of the client key, 0 if it is not
// in the table.
func (t *clientTable) conns(key netip.Addr) int64 {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[key]; e != nil {
		return e.conns
	}
	return 0
}

// close counts the end of a connection of e at now.
func (t *clientTable) close(e *clientEntry, now time.Time) {
	s := t.shard(e.key)
	s.mu.Lock()
	e.conns--
	e.last = now
	s.mu.Unlock()
}

// getLocked finds or adds the entry of key and moves it to the front;
// s.mu is held. Expired entries at the back go first.
func (t *clientTable) getLocked(s *clientShard, key netip.Addr, now time.Time) *clientEntry {
	if e := s.m[key]; e != nil {
		e.last = now
		s.lru.MoveToFront(e.elem)
		return e
	}
	// From the least recently used end: expired entries go, and the
	// first idle one is the victim if the shard is full. Entries with
	// open connections are in use: they move to the front, out of the
	// way of the next scans.
	var victim *clientEntry
	for i, el := 0, s.lru.Back(); el != nil && i < evictScan; i++ {
		prev, e := el.Prev(), el.Value.(*clientEntry)
		switch {
		case e.conns > 0:
			s.lru.MoveToFront(el)
		case now.Sub(e.last) > t.idle:
			s.remove(e)
		case victim == nil:
			victim = e
		}
		el = prev
	}
	if len(s.m) >= t.perShard {
		if victim == nil {
			return nil
		}
		s.remove(victim)
	}
	e := &clientEntry{key: key, last: now}
	if t.rate > 0 {
		e.limiter = rate.NewLimiter(t.rate, t.burst)
	}
	s.m[key] = e
	e.elem = s.lru.PushFront(e)
	return e
}

func (s *clientShard) remove(e *clientEntry) {
	s.lru.Remove(e.elem)
	delete(s.m, e.key)
}

// len returns the number of clients in the table.
func (t *clientTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
