package lb

import (
	"slices"
	"sync/atomic"
	"time"
)

// Statistics
//
// Counters live where the data path already touches memory: on the Pool,
// on each server's runtime state, on the frontends. They are updated with
// atomic adds, without locks and without allocating; the Stats methods copy
// them into plain structs that a scrape, a status page or an exporter reads
// at leisure. Field names follow HAProxy's stats (the CSV fields of its
// management guide, section 9.1), which each field's documentation names.

// cacheLinePad keeps counters that every request writes off the cache line
// of fields that every request reads.
type cacheLinePad [64]byte

// clockBase is the origin of monoNow.
var clockBase = time.Now()

// monoNow reads the monotonic clock alone, in nanoseconds since clockBase:
// time.Since reads no wall clock, which makes it cheaper than time.Now.
func monoNow() int64 { return int64(time.Since(clockBase)) }

// histogramBounds are the upper bounds of the buckets of every Histogram:
// from 100 µs to 5 min, roughly 1-2.5-5 per decade. The last bucket, past
// the last bound, counts everything slower.
var histogramBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
}

// Histogram counts durations in fixed buckets (see HistogramSnapshot.Bounds)
// and keeps their sum. Observe is lock-free and does not allocate; Snapshot
// reads it without stopping Observe. The zero value is ready to use.
type Histogram struct {
	buckets [len(histogramBounds) + 1]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

// Observe counts one duration. Negative durations count as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(histogramBounds) && d > histogramBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot returns the histogram's current counts. Observations made during
// the call may be counted in some buckets and not yet in the sum.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{
		Bounds: slices.Clone(histogramBounds[:]),
		Counts: make([]uint64, len(histogramBounds)),
	}
	var n uint64
	for i := range h.buckets {
		n += h.buckets[i].Load()
		if i < len(s.Counts) {
			s.Counts[i] = n
		}
	}
	s.Count = n
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// HistogramSnapshot is a copy of a Histogram, shaped as a Prometheus
// histogram: cumulative counts per upper bound, and the count and sum of all
// observations (the +Inf bucket is Count).
type HistogramSnapshot struct {
	// Bounds are the buckets' upper bounds, in increasing order; every
	// Histogram has the same.
	Bounds []time.Duration
	// Counts[i] is the number of observations at most Bounds[i].
	Counts []uint64
	// Count is the number of observations.
	Count uint64
	// Sum is the sum of the observations.
	Sum time.Duration
}

// add adds the observations of o, a snapshot with the same bounds or the
// zero value, to s.
func (s *HistogramSnapshot) add(o HistogramSnapshot) {
	if o.Counts == nil {
		return
	}
	if s.Counts == nil {
		s.Bounds, s.Counts = slices.Clone(o.Bounds), make([]uint64, len(o.Counts))
	}
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Count += o.Count
	s.Sum += o.Sum
}

// Mean returns Sum / Count, or 0 without observations.
func (s HistogramSnapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.Count)
}

// setMax raises m to v if v is larger.
func setMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// rateCounter counts events per second, as HAProxy's freq_ctr does: the
// count of the current second and that of the previous one, read as the
// previous count weighted by the part of the second still to come plus the
// current count. Each word packs a second (high 32 bits, Unix time) and a
// count (low 32 bits), so that a rotation is one compare-and-swap.
type rateCounter struct {
	cur, prev atomic.Uint64
	max       atomic.Int64
}

// inc counts one event at now and raises the maximum rate.
func (r *rateCounter) inc(now time.Time) {
	sec := uint64(now.Unix()) & 0xffffffff
	for {
		v := r.cur.Load()
		if v>>32 == sec {
			r.cur.Add(1)
			break
		}
		if r.cur.CompareAndSwap(v, sec<<32|1) {
			r.prev.Store(v)
			break
		}
	}
	setMax(&r.max, r.read(now))
}

// read returns the events of the last second at now, interpolated.
func (r *rateCounter) read(now time.Time) int64 {
	sec := uint64(now.Unix()) & 0xffffffff
	v, pv := r.cur.Load(), r.prev.Load()
	var cur, prev uint64
	switch v >> 32 {
	case sec:
		cur = v & 0xffffffff
		if pv>>32 == (sec-1)&0xffffffff {
			prev = pv & 0xffffffff
		}
	case (sec - 1) & 0xffffffff:
		prev = v & 0xffffffff
	}
	left := time.Second - time.Duration(now.Nanosecond())
	return int64(cur) + int64(prev*uint64(left)/uint64(time.Second))
}

// Response classes, the index into responseCounts.
const (
	class1xx = iota
	class2xx
	class3xx
	class4xx
	class5xx
	classOther
	numClasses
)

func statusClass(code int) int {
	if code >= 100 && code < 600 {
		return code/100 - 1
	}
	return classOther
}

type responseCounts [numClasses]atomic.Uint64

func (r *responseCounts) count(code int) { r[statusClass(code)].Add(1) }

func (r *responseCounts) snapshot() ResponseStats {
	return ResponseStats{
		Class1xx: r[class1xx].Load(), Class2xx: r[class2xx].Load(), Class3xx: r[class3xx].Load(),
		Class4xx: r[class4xx].Load(), Class5xx: r[class5xx].Load(), Other: r[classOther].Load(),
	}
}

// ResponseStats counts HTTP responses by status class.
type ResponseStats struct {
	Class1xx uint64 // hrsp_1xx
	Class2xx uint64 // hrsp_2xx
	Class3xx uint64 // hrsp_3xx
	Class4xx uint64 // hrsp_4xx
	Class5xx uint64 // hrsp_5xx
	Other    uint64 // hrsp_other: statuses outside 100-599
}

// Total is the sum of every class.
func (r ResponseStats) Total() uint64 {
	return r.Class1xx + r.Class2xx + r.Class3xx + r.Class4xx + r.Class5xx + r.Other
}

// traffic holds the counters of a server; the current and total sessions
// of a server are its serverRuntime's active and total. A Pool keeps one
// too, for what only the backend sees (its current and maximum sessions,
// its queue, connections to unknown servers); the rest of its totals are
// the sums of its servers', added up by Stats, so that the data path does
// not count everything twice.
type traffic struct {
	cur          atomic.Int64 // backend only
	max          atomic.Int64
	requests     atomic.Uint64
	bytesIn      atomic.Int64
	bytesOut     atomic.Int64
	responses    responseCounts
	connErrors   atomic.Uint64
	respErrors   atomic.Uint64
	retries      atomic.Uint64
	redispatches atomic.Uint64
	cliAborts    atomic.Uint64
	srvAborts    atomic.Uint64
	queueCur     atomic.Int64
	queueMax     atomic.Int64
	queueTime    Histogram
	connectTime  Histogram
	responseTime Histogram
	totalTime    Histogram
}

func (t *traffic) snapshot(cur int64, total uint64) TrafficStats {
	return TrafficStats{
		Cur: cur, Max: t.max.Load(), Total: total,
		Requests: t.requests.Load(),
		BytesIn:  t.bytesIn.Load(), BytesOut: t.bytesOut.Load(),
		Responses:     t.responses.snapshot(),
		ConnectErrors: t.connErrors.Load(), ResponseErrors: t.respErrors.Load(),
		Retries: t.retries.Load(), Redispatches: t.redispatches.Load(),
		ClientAborts: t.cliAborts.Load(), ServerAborts: t.srvAborts.Load(),
		QueueCur: t.queueCur.Load(), QueueMax: t.queueMax.Load(),
		QueueTime: t.queueTime.Snapshot(), ConnectTime: t.connectTime.Snapshot(),
		ResponseTime: t.responseTime.Snapshot(), TotalTime: t.totalTime.Snapshot(),
	}
}

// addServer adds the counters of a server to the totals of its backend;
// the current and maximum sessions and the queue are the backend's own.
func (t *TrafficStats) addServer(s TrafficStats) {
	t.Total += s.Total
	t.Requests += s.Requests
	t.BytesIn += s.BytesIn
	t.BytesOut += s.BytesOut
	r := &t.Responses
	r.Class1xx += s.Responses.Class1xx
	r.Class2xx += s.Responses.Class2xx
	r.Class3xx += s.Responses.Class3xx
	r.Class4xx += s.Responses.Class4xx
	r.Class5xx += s.Responses.Class5xx
	r.Other += s.Responses.Other
	t.ConnectErrors += s.ConnectErrors
	t.ResponseErrors += s.ResponseErrors
	t.Retries += s.Retries
	t.Redispatches += s.Redispatches
	t.ClientAborts += s.ClientAborts
	t.ServerAborts += s.ServerAborts
	t.ConnectTime.add(s.ConnectTime)
	t.ResponseTime.add(s.ResponseTime)
	t.TotalTime.add(s.TotalTime)
}

// retireLocked keeps the counters of a removed server whose runtime state
// the pool forgets, for the backend's totals; p.mu is held.
func (p *Pool) retireLocked(rt *serverRuntime) {
	p.retired.addServer(rt.traffic.snapshot(0, rt.total.Load()))
}

// TrafficStats are the traffic counters of a backend (a Pool) or of one of
// its servers. A session is one use of a server from pick to end (a Lease):
// an L4 connection, or an HTTP request at L7.
type TrafficStats struct {
	// Cur is the number of sessions in progress (scur).
	Cur int64
	// Max is the highest Cur seen (smax).
	Max int64
	// Total is the number of sessions started (stot), failed connection
	// attempts included.
	Total uint64
	// Requests is the number of HTTP requests that ended, with a response
	// or not (req_tot); 0 at L4.
	Requests uint64
	// BytesIn is the bytes from clients sent to servers (bin): at L4 and
	// on upgraded HTTP connections (WebSockets) every byte, counted as it
	// is written; at L7 request bodies, counted when the request ends.
	BytesIn int64
	// BytesOut is the bytes from servers sent to clients (bout): at L4 and
	// on upgraded HTTP connections every byte, counted as it is read; at
	// L7 response bodies, counted when the response ends.
	BytesOut int64
	// Responses counts server responses by class (hrsp_1xx .. hrsp_other).
	Responses ResponseStats
	// ConnectErrors counts failed connection attempts to servers (econ).
	ConnectErrors uint64
	// ResponseErrors counts HTTP requests that got no response from a
	// server they were sent to, the client still waiting, and, as HAProxy
	// does, the responses counted in ServerAborts (eresp).
	ResponseErrors uint64
	// ClientAborts counts HTTP requests the client abandoned before the end
	// of the response, or whose body failed on the way to the server
	// (invalid chunked framing, over MaxBodyBytes, cut by the client),
	// and L4 sessions that ended because the client's connection failed,
	// such as a reset (cli_abrt). None counts as a failure of the server.
	ClientAborts uint64
	// ServerAborts counts HTTP responses the server broke off before
	// their end, and L4 sessions that ended because the server's
	// connection failed (srv_abrt).
	ServerAborts uint64
	// Retries counts connection attempts that failed and were tried again
	// (wretr); for a server, those that failed on it.
	Retries uint64
	// Redispatches counts retries that went to another server (wredis);
	// for a server, the times traffic was moved away from it.
	Redispatches uint64
	// QueueCur is the number of sessions waiting for a free slot because
	// servers were at their MaxConns (qcur). Servers count the clients
	// pinned to them (Affinity) that wait for them in particular.
	QueueCur int64
	// QueueMax is the highest QueueCur seen (qmax).
	QueueMax int64
	// QueueTime is the time spent waiting in the queue, by sessions that
	// waited (qtime, HAProxy's Tw).
	QueueTime HistogramSnapshot
	// ConnectTime is the time to connect to a server, PROXY header and TLS
	// handshake included, for successful new connections (ctime, Tc). At L7
	// reused keep-alive connections add nothing.
	ConnectTime HistogramSnapshot
	// ResponseTime is the time from the pick to the response headers, at L7
	// (rtime, Tr; connecting a new connection included).
	ResponseTime HistogramSnapshot
	// TotalTime is the time from the pick to the end of the session:
	// response body sent, or L4 connection closed (ttime, Tt); failed
	// connection attempts are not counted.
	TotalTime HistogramSnapshot
}

// PoolStats is a snapshot of a Pool's statistics: the backend as a whole and
// each server.
type PoolStats struct {
	// Name is the Pool's Name (pxname).
	Name string
	// TrafficStats are the backend's totals over all its servers, removed
	// ones included; Cur, Max and the queue are the backend's own, and
	// QueueTime counts every session that waited (a server's, those that
	// it then served).
	TrafficStats
	// Active is the number of regular servers that are pickable now (act);
	// Backup the number of pickable backup servers (bck).
	Active, Backup int
	// Servers are the configured servers in configuration order, then the
	// removed servers whose sessions have not all ended.
	Servers []ServerStats
}

// Up reports whether the backend has a pickable server (status UP rather
// than DOWN).
func (s PoolStats) Up() bool { return s.Active+s.Backup > 0 }

// ServerStats is a snapshot of the statistics of one server of a Pool.
type ServerStats struct {
	// Name is the server's Name (svname); Addr its address (addr).
	Name, Addr string
	// Weight is the server's effective weight (weight).
	Weight int
	// Backup reports a backup server (bck, as opposed to act).
	Backup bool
	// MaxConns is the server's session limit, 0 for none (slim).
	MaxConns int
	// State is the server's state (status): up, going down ("UP 1/3"),
	// down, going up ("DOWN 1/2") or maintenance (MAINT).
	State State
	// Reason is the reason of the last failed health check or of the last
	// SetState, empty when none.
	Reason string
	// Since is when State last changed (lastchg is the time since then).
	Since time.Time
	// Draining reports a server that takes no new traffic (DRAIN).
	Draining bool
	// Removed reports a server no longer configured whose sessions have not
	// all ended.
	Removed bool
	// TrafficStats are the server's traffic counters.
	TrafficStats
	// Health is what the HealthChecker reported.
	Health HealthStats
}

// HealthStats are the health-check statistics of one server.
type HealthStats struct {
	// Last is the result of the last check; its Time is zero before the
	// first check (last_chk, check_status, check_code, check_duration).
	Last CheckResult
	// Passes and Fails count consecutive passed and failed checks; one of
	// them is 0 (check_rise/check_fall progress, "UP 1/3").
	Passes, Fails int
	// Failures counts every failed check (chkfail).
	Failures uint64
	// Downs counts the transitions to StateDown (chkdown).
	Downs uint64
	// Downtime is the total time spent in StateDown, the current period
	// included (downtime).
	Downtime time.Duration
}

// CheckResult is the outcome of one health check, which a HealthChecker
// reports through CheckRecorder.
type CheckResult struct {
	// Time is when the check started.
	Time time.Time
	// Duration is how long the check took (check_duration).
	Duration time.Duration
	// Passed reports a successful check.
	Passed bool
	// Status is HAProxy's check_status for the result: L4OK, L4TOUT, L4CON,
	// L6OK, L6TOUT, L6RSP, L7OK, L7TOUT, L7RSP, L7STS, ...
	Status string
	// Code is the response code the check got, when its protocol has one
	// (an HTTP status; check_code), else 0.
	Code int
	// Reason describes a failure, empty when the check passed.
	Reason string
}

// CheckRecorder is implemented by ServerSets that keep the result of every
// health check for their statistics; *Pool does. A HealthChecker reports
// each check it runs through it, when the set implements it, beside the
// verdicts it reports through SetHealth.
type CheckRecorder interface {
	// RecordCheck records the result of a check of the named server. It
	// reports false when no server has that name.
	RecordCheck(name string, r CheckResult) bool
}

// *Pool keeps health check results.
var _ CheckRecorder = (*Pool)(nil)

// healthRecord is the health-check part of a serverRuntime, guarded by
// Pool.mu.
type healthRecord struct {
	last          CheckResult
	passes, fails int
	failures      uint64
	downs         uint64
	downtime      time.Duration // closed periods in StateDown
}

// RecordCheck records the result of a health check of the named server.
// Part of CheckRecorder.
func (p *Pool) RecordCheck(name string, r CheckResult) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := p.state[name]
	if rt == nil || rt.removed {
		return false
	}
	h := &rt.health
	h.last = r
	if r.Passed {
		h.passes++
		h.fails = 0
	} else {
		h.fails++
		h.passes = 0
		h.failures++
	}
	return true
}

// Stats returns a snapshot of the pool's statistics. It is safe to call
// concurrently with traffic, which it does not stop: it takes the pool's
// lock (as Status does) only to list the servers.
func (p *Pool) Stats() PoolStats {
	out := PoolStats{
		Name:         p.Name,
		TrafficStats: p.traffic.snapshot(p.traffic.cur.Load(), 0),
	}
	if s := p.snap.Load(); s != nil {
		if s.Backup {
			out.Backup = len(s.Servers)
		} else {
			out.Active = len(s.Servers)
		}
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out.Servers = make([]ServerStats, 0, len(p.state))
	seen := make(map[*serverRuntime]bool, len(p.servers))
	for _, s := range p.servers {
		seen[s.rt] = true
		out.Servers = append(out.Servers, serverStatsOf(s, s.rt, now))
	}
	for name, rt := range p.state {
		if !seen[rt] {
			out.Servers = append(out.Servers, serverStatsOf(&Server{Name: name}, rt, now))
		}
	}
	for i := range out.Servers {
		out.addServer(out.Servers[i].TrafficStats)
	}
	out.addServer(p.retired)
	return out
}

// serverStatsOf copies the statistics of s; p.mu is held.
func serverStatsOf(s *Server, rt *serverRuntime, now time.Time) ServerStats {
	st := ServerStats{
		Name: s.Name, Addr: s.Addr, Weight: s.EffectiveWeight(), Backup: s.Backup, MaxConns: s.MaxConns,
		State: rt.state, Reason: rt.reason, Since: rt.since,
		Draining: rt.draining.Load(), Removed: rt.removed,
		TrafficStats: rt.traffic.snapshot(rt.active.Load(), rt.total.Load()),
		Health: HealthStats{
			Last: rt.health.last, Passes: rt.health.passes, Fails: rt.health.fails,
			Failures: rt.health.failures, Downs: rt.health.downs, Downtime: rt.health.downtime,
		},
	}
	if rt.state == StateDown {
		st.Health.Downtime += now.Sub(rt.since)
	}
	return st
}

// FrontendStats is a snapshot of the statistics of a frontend: a
// TCPFrontend, or a ReverseProxy as the L7 frontend.
type FrontendStats struct {
	// Name is the frontend's name (pxname).
	Name string
	// ConnCur is the number of client connections open (scur).
	ConnCur int64
	// ConnMax is the highest ConnCur seen (smax).
	ConnMax int64
	// ConnTotal is the number of client connections accepted (conn_tot;
	// stot at L4).
	ConnTotal uint64
	// ConnRate is the number of connections accepted over the last second
	// (conn_rate, rate at L4); ConnRateMax its highest value (conn_rate_max).
	ConnRate, ConnRateMax int64
	// Requests is the number of HTTP requests received (req_tot), denied
	// ones included; 0 at L4.
	Requests uint64
	// Denied counts connections or requests refused by access rules (dreq),
	// as counted through DeniedCounter, and those refused by the
	// frontend's Limits: connections at L4, requests answered 429 at L7.
	Denied uint64
	// BytesIn is the bytes received from clients and sent on (bin); BytesOut
	// the bytes sent to clients (bout). At L4 and on upgraded HTTP
	// connections they count every byte as it moves; at L7, bodies when
	// each request ends.
	BytesIn, BytesOut int64
	// Responses counts the responses sent to clients by class, those the
	// proxy generated (502, 503, 504) included (hrsp_1xx .. hrsp_other).
	// Responses of the Fallback handler and of handlers in front of the
	// proxy (acl.FilterHTTP's 403s and redirects) are not counted.
	Responses ResponseStats
	// ClientAborts counts requests that the client abandoned before the
	// response was complete (cli_abrt).
	ClientAborts uint64
	// Errors counts failures of the frontend itself (ereq): at L4 failed
	// accepts and Backends that panicked; at L7 requests that got an error
	// response from the proxy (no server, server error or timeout, and
	// requests refused for their framing or size: 400, 413, 431).
	Errors uint64
}

// frontendStats are the counters of a frontend.
type frontendStats struct {
	cur       atomic.Int64
	max       atomic.Int64
	total     atomic.Uint64
	rate      rateCounter
	requests  atomic.Uint64
	denied    atomic.Uint64
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	responses responseCounts
	aborts    atomic.Uint64
	errors    atomic.Uint64
}

// open counts a new client connection accepted at now.
func (f *frontendStats) open(now time.Time) {
	setMax(&f.max, f.cur.Add(1))
	f.total.Add(1)
	f.rate.inc(now)
}

func (f *frontendStats) snapshot(name string) FrontendStats {
	return FrontendStats{
		Name: name, ConnCur: f.cur.Load(), ConnMax: f.max.Load(), ConnTotal: f.total.Load(),
		ConnRate: f.rate.read(time.Now()), ConnRateMax: f.rate.max.Load(),
		Requests: f.requests.Load(), Denied: f.denied.Load(),
		BytesIn: f.bytesIn.Load(), BytesOut: f.bytesOut.Load(),
		Responses: f.responses.snapshot(), ClientAborts: f.aborts.Load(), Errors: f.errors.Load(),
	}
}

// DeniedCounter is implemented by what counts the connections and requests
// that access rules refuse: *TCPFrontend, *ReverseProxy, and *Conn, which
// counts on behalf of the TCPFrontend that accepted it. Filters (package
// acl) call CountDenied once per refusal when what they wrap or serve
// implements it.
type DeniedCounter interface {
	CountDenied()
}

// Stats returns a snapshot of the frontend's statistics. It is safe to call
// concurrently with traffic.
func (s *TCPFrontend) Stats() FrontendStats { return s.stats.snapshot(s.Name) }

// CountDenied counts one connection refused by access rules. Part of
// DeniedCounter.
func (s *TCPFrontend) CountDenied() { s.stats.denied.Add(1) }

// CountDenied counts one connection refused by access rules on the
// statistics of the TCPFrontend that accepted c, if any. Part of
// DeniedCounter.
func (c *Conn) CountDenied() {
	if c.fe != nil {
		c.fe.denied.Add(1)
	}
}

// Stats returns a snapshot of the proxy's statistics as the L7 frontend.
// Connection counts need the proxy's ConnState hook on the http.Server. It
// is safe to call concurrently with traffic.
func (p *ReverseProxy) Stats() FrontendStats { return p.stats.snapshot(p.Name) }

// CountDenied counts one request refused by access rules; it counts in
// Requests too. Part of DeniedCounter.
func (p *ReverseProxy) CountDenied() {
	p.stats.denied.Add(1)
	p.stats.requests.Add(1)
}
