package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Defaults of the Monitor's zero-valued fields, as in HAProxy.
const (
	DefaultInterval          = 3 * time.Second
	DefaultTimeout           = 1 * time.Second
	DefaultTransientInterval = 500 * time.Millisecond
	DefaultFall              = 3
	DefaultRise              = 2
	DefaultJitter            = 0.1
	DefaultConcurrency       = 64
	DefaultPassiveBackoff    = 30 * time.Second
)

// MetaCheckPort is the lb.Server.Meta key that overrides the port checked
// for one server (the check port defaults to the server's port).
const MetaCheckPort = "check-port"

// ReasonPending is the reason reported for a server kept down until its first
// check passes (a pool whose InitialState is lb.StateDown).
const ReasonPending = "not checked yet"

// Monitor is an lb.HealthChecker: it checks every server of the pools it
// watches with Probe and reports their state through the pool's SetHealth.
// As an lb.Observer it also ejects servers that fail on real traffic
// (passive checks).
//
// Checks connect as the pool does, with its Dial, and write its ProxyHeader
// in the LOCAL form (lb.ServerSet.CheckConfig); Port and NoProxyHeader
// change that for checks. A new server starts in the pool's InitialState:
// a pickable one (lb.StateUp, the default) stays pickable until a check
// fails; any other is reported down, with ReasonPending, until a check
// passes. A server the set already has down when the Monitor first sees
// it (a set with a Status method, as lb.Pool has, given the states of
// the pool it replaces) stays down until a check passes.
//
// Each server goes through up, going down, down and going up: an up server
// that fails a check is going down (still pickable) and is down after Fall
// consecutive failures; a down server that passes a check is going up (not
// yet pickable) and is up after Rise consecutive passes. While going up or
// down a server is checked every TransientInterval, and so is a down server
// unless DownInterval says otherwise: a recovered server is back within
// about Rise × TransientInterval, a dead one out within about
// Fall × Interval + Timeout. The first verdict on a new server is decisive
// (up or down at once). Draining (lb.Pool.Drain) and maintenance
// (lb.StateMaintenance through Pool.SetState) are the host's decisions: the
// Monitor keeps checking such servers but never changes them.
//
// Health state is keyed by (pool, server, check): every Watch call keeps its
// own, for the servers of its set, by name and checked address, so two
// pools with a server on the same address never share state, and a server
// whose address or check port changes starts over.
//
// Checks run on at most Concurrency goroutines per watched pool, started
// per check, so a thousand servers do not start a thousand goroutines per
// interval; waits are shortened by a random share (Jitter) so checks spread
// out.
//
// Configure the fields before the first Watch and do not change them
// afterwards. One Monitor may watch several pools.
type Monitor struct {
	// Probe checks one server. Nil means no active checks: servers are up
	// unless passive checks eject them, and back up after the back-off.
	Probe Probe

	// Interval between checks of an up server. Zero means DefaultInterval.
	Interval time.Duration
	// TransientInterval between checks of a server going up or down. Zero
	// means DefaultTransientInterval.
	TransientInterval time.Duration
	// DownInterval between checks of a down server. Zero means
	// TransientInterval.
	DownInterval time.Duration
	// Timeout bounds each check. Zero means DefaultTimeout.
	Timeout time.Duration
	// Fall is the number of consecutive failures that take a server down;
	// Rise the number of consecutive passes that bring it up. Zero means
	// DefaultFall and DefaultRise.
	Fall, Rise int
	// Jitter shortens each wait by a random share of it, up to Jitter (a
	// fraction of the wait). Zero means DefaultJitter; negative means none.
	Jitter float64
	// Concurrency bounds the checks in flight per watched pool. Zero means
	// DefaultConcurrency.
	Concurrency int

	// Port, when not zero, is the port checked on every server, unless the
	// server's Meta has a MetaCheckPort entry.
	Port int
	// NoProxyHeader, when set, leaves the pool's ProxyHeader off check
	// connections, for servers whose check port does not expect PROXY
	// protocol. By default checks to a pool with a ProxyHeader start with
	// its LOCAL form.
	NoProxyHeader bool

	// Passive configures passive checks; the zero value disables them.
	Passive Passive

	// OnChange, when set, is called on every state change of a server, from
	// the goroutine that runs Watch, in order. It must not block.
	OnChange func(Event)

	// Logger receives the Monitor's events; nil means slog.Default().
	// Transitions are logged at Info, failed checks at Debug.
	Logger *slog.Logger

	mu       sync.RWMutex
	observed map[*lb.Server]*entry // for Observe
}

// Passive configures passive checks: servers failing on real traffic are
// ejected (down) for Backoff, then active checks bring them back (with no
// Probe, they come back after Backoff).
type Passive struct {
	// Failures is the number of consecutive failures on real traffic that
	// ejects a server. Zero disables passive checks.
	Failures int
	// Status reports whether an HTTP status counts as a failure. Nil means
	// 500-599. Connection failures (lb.Outcome.Connect) always count.
	Status func(code int) bool
	// Backoff is how long an ejected server stays down before active checks
	// may bring it back. Zero means DefaultPassiveBackoff.
	Backoff time.Duration
}

// Event is a change of a server's state, for Monitor.OnChange.
type Event struct {
	Pool, Server, Addr string
	From, To           lb.State
	// Reason is the reason of the last failure; empty once up.
	Reason string
	// Passive reports an ejection by passive checks.
	Passive bool
	Time    time.Time
}

// entry is the health state of one (pool, server, check). Only the watch
// goroutine touches it, except pfail (Observe).
type entry struct {
	w       *watch
	name    string
	addr    string
	srv     *lb.Server
	state   lb.State
	checked bool // a verdict was reached
	ok      int  // consecutive passes
	fail    int  // consecutive failures
	reason  string
	next    time.Time
	running bool
	ejected time.Time // passive back-off ends
	gone    bool      // removed from the set

	pfail atomic.Int32 // consecutive passive failures
}

type result struct {
	e   *entry
	err error
}

// watch is one Watch call: the state of one pool.
type watch struct {
	m       *Monitor
	set     lb.ServerSet
	pool    string
	config  lb.CheckConfig    // the set's, read once
	entries map[string]*entry // by server name
	results chan result
	passive chan *entry
	wg      sync.WaitGroup
	running int
}

// Watch checks the servers of set until ctx is done, following membership
// changes. Part of lb.HealthChecker; Pool.Run calls it. It returns after
// the checks in flight have ended.
func (m *Monitor) Watch(ctx context.Context, set lb.ServerSet) {
	w := &watch{
		m: m, set: set, pool: set.PoolName(), config: set.CheckConfig(),
		entries: make(map[string]*entry),
		results: make(chan result, m.concurrency()),
		passive: make(chan *entry, 64),
	}
	defer w.wg.Wait()
	defer w.forget()
	members, changed := set.Members()
	w.sync(members, time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := w.dispatch(ctx, time.Now())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-changed:
			members, changed = set.Members()
			w.sync(members, time.Now())
		case r := <-w.results:
			w.running--
			r.e.running = false
			w.verdict(r.e, r.err, time.Now())
		case e := <-w.passive:
			w.eject(e, time.Now())
		case <-timer.C:
		}
	}
}

// sync follows the set's membership: new servers get an entry (and their
// initial state, or down when the set already has them down), removed
// ones lose it.
func (w *watch) sync(members []*lb.Server, now time.Time) {
	seen := make(map[string]bool, len(members))
	var fresh []*entry
	// Read before m.mu: it takes the set's lock.
	down := w.knownDown()
	defer func() { // after the unlock: reports may close sessions, which Observe
		for _, e := range fresh {
			w.report(e)
		}
	}()
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if w.m.observed == nil {
		w.m.observed = make(map[*lb.Server]*entry)
	}
	for _, s := range members {
		seen[s.Name] = true
		addr := w.m.checkAddr(s)
		e := w.entries[s.Name]
		if e != nil && e.addr != addr { // another check: start over
			e.gone = true
			w.unobserve(e)
			e = nil
		}
		if e == nil {
			e = &entry{w: w, name: s.Name, addr: addr, state: w.initial(), next: now}
			w.entries[s.Name] = e
			reason := ""
			if r, ok := down[s.Name]; ok {
				e.state, reason = lb.StateDown, r
			}
			if e.state == lb.StateDown && reason == "" {
				reason = ReasonPending
			}
			e.reason = reason
			fresh = append(fresh, e)
		}
		if e.srv != s {
			w.unobserve(e)
			e.srv = s
			w.m.observed[s] = e
		}
	}
	for name, e := range w.entries {
		if !seen[name] {
			e.gone = true
			w.unobserve(e)
			delete(w.entries, name)
		}
	}
}

// unobserve removes e's server from the Observe map; m.mu is held.
func (w *watch) unobserve(e *entry) {
	if e.srv != nil && w.m.observed[e.srv] == e {
		delete(w.m.observed, e.srv)
	}
}

// forget removes the watch's servers from the Observe map.
func (w *watch) forget() {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	for _, e := range w.entries {
		w.unobserve(e)
	}
}

// dispatch starts the checks that are due, as far as Concurrency allows,
// and returns how long to wait for the next one.
func (w *watch) dispatch(ctx context.Context, now time.Time) time.Duration {
	wait := time.Hour
	limit := w.m.concurrency()
	for _, e := range w.entries {
		if e.running {
			continue
		}
		if d := e.next.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if w.m.Probe == nil {
			// Passive checks only: a server whose back-off is over is up.
			w.verdict(e, nil, now)
			wait = min(wait, e.next.Sub(now))
			continue
		}
		if w.running >= limit {
			continue // a result will wake the loop
		}
		w.running++
		e.running = true
		w.wg.Add(1)
		go w.check(ctx, e, w.target(e))
	}
	return max(wait, 0)
}

func (w *watch) target(e *entry) Target {
	t := Target{Pool: w.pool, Server: e.srv, Addr: e.addr, Dial: w.config.Dial}
	if !w.m.NoProxyHeader {
		t.ProxyHeader = w.config.ProxyHeader
	}
	return t
}

// knownDown returns the servers the set has down, with their reasons, when
// it reports states (lb.Pool does): a server given its last known state,
// as when a rebuilt pool takes over from the one it replaces, stays down
// until a check passes instead of starting in the initial state.
func (w *watch) knownDown() map[string]string {
	st, ok := w.set.(interface{ Status() []lb.ServerStatus })
	if !ok {
		return nil
	}
	var down map[string]string
	for _, s := range st.Status() {
		if s.State == lb.StateDown && !s.Removed {
			if down == nil {
				down = map[string]string{}
			}
			down[s.Name] = s.Reason
		}
	}
	return down
}

// initial is the state a new server is reported in until its first verdict:
// up when the pool's InitialState is pickable, else down.
func (w *watch) initial() lb.State {
	if w.config.InitialState.Pickable() {
		return lb.StateUp
	}
	return lb.StateDown
}

// check runs one probe and hands the result to the watch goroutine.
func (w *watch) check(ctx context.Context, e *entry, t Target) {
	defer w.wg.Done()
	cctx, cancel := context.WithTimeout(ctx, w.m.timeout())
	start := time.Now()
	err := w.m.Probe.Check(cctx, t)
	took := time.Since(start)
	timedOut := cctx.Err() != nil && ctx.Err() == nil
	if err == nil && timedOut {
		err = fmt.Errorf("check took longer than %v", w.m.timeout())
	}
	cancel()
	if rec, ok := w.set.(lb.CheckRecorder); ok && ctx.Err() == nil {
		r := lb.CheckResult{Time: start, Duration: took, Passed: err == nil}
		r.Status, r.Code = checkStatus(w.m.Probe, err, timedOut)
		if err != nil {
			r.Reason = err.Error()
		}
		rec.RecordCheck(e.name, r)
	}
	select {
	case w.results <- result{e, err}:
	case <-ctx.Done():
	}
}

// verdict applies the result of a check to e's state machine.
func (w *watch) verdict(e *entry, err error, now time.Time) {
	if e.gone {
		return
	}
	if now.Before(e.ejected) { // a check that started before an ejection
		e.next = e.ejected
		return
	}
	from := e.state
	first := !e.checked || w.m.Probe == nil // without probes, the back-off alone decides
	e.checked = true
	fall, rise := w.m.fall(), w.m.rise()
	if err == nil {
		e.fail = 0
		e.ok++
		switch {
		case first, e.state == lb.StateUp, e.state == lb.StateGoingDown:
			e.state = lb.StateUp
		case e.ok >= rise:
			e.state = lb.StateUp
		default:
			e.state = lb.StateGoingUp
		}
		if e.state == lb.StateUp {
			e.reason = ""
		}
	} else {
		e.ok = 0
		e.fail++
		e.reason = err.Error()
		switch {
		case first, e.state == lb.StateDown, e.state == lb.StateGoingUp:
			e.state = lb.StateDown
		case e.fail >= fall:
			e.state = lb.StateDown
		default:
			e.state = lb.StateGoingDown
		}
		w.m.logger().LogAttrs(context.Background(), slog.LevelDebug, "health check failed",
			slog.String("pool", w.pool), slog.String("server", e.name), slog.String("addr", e.addr),
			slog.String("state", e.state.String()), slog.Any("error", err))
	}
	e.next = now.Add(w.m.jitter(w.m.intervalFor(e.state)))
	w.report(e)
	if e.state != from {
		w.changed(e, from, false, now)
	}
}

// eject takes e down after passive failures.
func (w *watch) eject(e *entry, now time.Time) {
	if e.gone {
		return
	}
	from := e.state
	n := w.m.Passive.Failures
	e.ejected = now.Add(w.m.backoff())
	e.next = e.ejected
	e.ok, e.fail = 0, 0
	e.checked = true
	e.state = lb.StateDown
	e.reason = "passive: " + strconv.Itoa(n) + " consecutive failures on traffic"
	e.pfail.Store(0)
	w.report(e)
	if from != e.state {
		w.changed(e, from, true, now)
	}
}

func (w *watch) report(e *entry) {
	w.set.SetHealth(e.name, e.state, e.reason)
}

func (w *watch) changed(e *entry, from lb.State, passive bool, now time.Time) {
	w.m.logger().LogAttrs(context.Background(), slog.LevelInfo, "health state",
		slog.String("pool", w.pool), slog.String("server", e.name), slog.String("addr", e.addr),
		slog.String("from", from.String()), slog.String("to", e.state.String()),
		slog.String("reason", e.reason), slog.Bool("passive", passive))
	if w.m.OnChange != nil {
		w.m.OnChange(Event{Pool: w.pool, Server: e.name, Addr: e.addr, From: from, To: e.state,
			Reason: e.reason, Passive: passive, Time: now})
	}
}

// Observe implements lb.Observer: with Passive.Failures set, it counts
// consecutive failures of each server on real traffic and ejects the server
// at the threshold. It takes a read lock and an atomic add; it never blocks.
func (m *Monitor) Observe(s *lb.Server, o lb.Outcome) {
	if m.Passive.Failures <= 0 {
		return
	}
	m.mu.RLock()
	e := m.observed[s]
	m.mu.RUnlock()
	if e == nil {
		return
	}
	switch {
	case m.passiveFailure(o):
		if e.pfail.Add(1) == int32(m.Passive.Failures) {
			select {
			case e.w.passive <- e:
			default: // the watch is busy: count again
				e.pfail.Store(0)
			}
		}
	case o.Err == nil:
		e.pfail.Store(0)
	}
}

func (m *Monitor) passiveFailure(o lb.Outcome) bool {
	if o.Err != nil && o.Connect {
		return true
	}
	if o.Status == 0 {
		return false
	}
	if m.Passive.Status != nil {
		return m.Passive.Status(o.Status)
	}
	return o.Status >= 500 && o.Status <= 599
}

// checkAddr is the address checked for s: its host with the check port.
func (m *Monitor) checkAddr(s *lb.Server) string {
	port := ""
	if m.Port > 0 {
		port = strconv.Itoa(m.Port)
	}
	if p, ok := s.Meta[MetaCheckPort]; ok {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			port = strconv.Itoa(n)
		} else {
			m.logger().Warn("health: ignoring bad "+MetaCheckPort, slog.String("server", s.Name), slog.String("value", p))
		}
	}
	if port == "" {
		return s.Addr
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return s.Addr
	}
	return net.JoinHostPort(host, port)
}

// intervalFor is the wait before the next check of a server in state st.
func (m *Monitor) intervalFor(st lb.State) time.Duration {
	switch st {
	case lb.StateUp:
		return m.interval()
	case lb.StateDown:
		return m.downInterval()
	}
	return m.transientInterval()
}

// jitter shortens d by a random share of it, up to jitterShare.
func (m *Monitor) jitter(d time.Duration) time.Duration {
	j := m.jitterShare()
	if j == 0 || d <= 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*j*float64(d))
}

// The accessors below resolve the defaults of the Monitor's fields, each in
// one place.

func (m *Monitor) interval() time.Duration { return orDefault(m.Interval, DefaultInterval) }

func (m *Monitor) transientInterval() time.Duration {
	return orDefault(m.TransientInterval, DefaultTransientInterval)
}

func (m *Monitor) downInterval() time.Duration {
	return orDefault(m.DownInterval, m.transientInterval())
}

// jitterShare is Jitter with its default applied, in [0, 1]; 0 for none.
func (m *Monitor) jitterShare() float64 {
	switch {
	case m.Jitter == 0:
		return DefaultJitter
	case m.Jitter < 0:
		return 0
	}
	return min(m.Jitter, 1)
}

func (m *Monitor) timeout() time.Duration { return orDefault(m.Timeout, DefaultTimeout) }

func (m *Monitor) backoff() time.Duration {
	return orDefault(m.Passive.Backoff, DefaultPassiveBackoff)
}

func (m *Monitor) fall() int {
	if m.Fall > 0 {
		return m.Fall
	}
	return DefaultFall
}

func (m *Monitor) rise() int {
	if m.Rise > 0 {
		return m.Rise
	}
	return DefaultRise
}

func (m *Monitor) concurrency() int {
	if m.Concurrency > 0 {
		return m.Concurrency
	}
	return DefaultConcurrency
}

func (m *Monitor) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
