package metrics

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbkit/lbkit/lb"
)

// DefaultNamespace is the namespace of the metrics of a Collector whose
// Namespace is empty.
const DefaultNamespace = "lbkit"

// PoolSource is what a Collector reads a backend from; *lb.Pool is one.
type PoolSource interface {
	Stats() lb.PoolStats
}

// FrontendSource is what a Collector reads a frontend from;
// *lb.ReverseProxy and *lb.TCPFrontend are ones.
type FrontendSource interface {
	Stats() lb.FrontendStats
}

// AccessLogSource is what a Collector reads an access log's health from;
// *accesslog.Writer is one.
type AccessLogSource interface {
	// Dropped counts the records dropped because the log's buffer was full.
	Dropped() uint64
	// Errors counts the records its sink failed to write.
	Errors() uint64
}

// SharedSource is what a Collector reads state shared between load
// balancers from: *redistable.Table (package sticky/redistable) and
// *redisrate.Limiter (package lb/redisrate) are ones.
type SharedSource interface {
	SharedStats() lb.SharedStats
}

// Collector is a prometheus.Collector of the pools and frontends added to
// it. It calls their Stats methods when it is collected, that is when
// Prometheus scrapes, and keeps no state between scrapes. The zero value
// is ready to use, with no sources and the namespace DefaultNamespace.
//
// The methods of a Collector are safe for concurrent use; sources may be
// added and removed while it is being collected, and a scrape sees each
// source wholly or not at all. A Collector must not be copied after first
// use.
type Collector struct {
	// Namespace is the first part of every metric name, in place of
	// HAProxy's "haproxy"; empty means DefaultNamespace. It must not
	// change once the Collector is registered or collected.
	Namespace string

	once sync.Once
	d    *descs

	mu         sync.Mutex
	pools      map[string]PoolSource
	frontends  map[string]FrontendSource
	accessLogs map[string]AccessLogSource
	shared     map[string]SharedSource
}

// AddPool exports the backend and server metrics of p with the label
// proxy=name, in place of the pool added before under that name, if any.
// The label is name, not the PoolStats' Name, so that RemovePool finds it.
func (c *Collector) AddPool(name string, p PoolSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pools == nil {
		c.pools = make(map[string]PoolSource)
	}
	c.pools[name] = p
}

// RemovePool stops exporting the pool added under name; it does nothing
// when there is none. The pool's series disappear from the next scrape.
func (c *Collector) RemovePool(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pools, name)
}

// AddFrontend exports the frontend metrics of f with the label proxy=name,
// in place of the frontend added before under that name, if any.
func (c *Collector) AddFrontend(name string, f FrontendSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frontends == nil {
		c.frontends = make(map[string]FrontendSource)
	}
	c.frontends[name] = f
}

// RemoveFrontend stops exporting the frontend added under name; it does
// nothing when there is none.
func (c *Collector) RemoveFrontend(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.frontends, name)
}

// AddAccessLog exports the drops and write errors of an access log with
// the label log=name, in place of the log added before under that name, if
// any: <ns>_access_log_dropped_total and <ns>_access_log_errors_total. A
// record dropped is a request or session missing from the log, so alert
// on their rate.
func (c *Collector) AddAccessLog(name string, a AccessLogSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.accessLogs == nil {
		c.accessLogs = make(map[string]AccessLogSource)
	}
	c.accessLogs[name] = a
}

// RemoveAccessLog stops exporting the access log added under name; it
// does nothing when there is none.
func (c *Collector) RemoveAccessLog(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.accessLogs, name)
}

// AddShared exports how a component that shares its state through an
// outside store (Redis) used it, with the label shared=name, in place of
// the one added before under that name, if any:
// <ns>_shared_requests_total, <ns>_shared_fallbacks_total (decisions taken
// locally because the store was away or slow) and
// <ns>_shared_errors_total. Alert on the rate of fallbacks: instances then
// decide on their own.
func (c *Collector) AddShared(name string, s SharedSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared == nil {
		c.shared = make(map[string]SharedSource)
	}
	c.shared[name] = s
}

// RemoveShared stops exporting the source added under name; it does
// nothing when there is none.
func (c *Collector) RemoveShared(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.shared, name)
}

// Describe sends the descriptions of every metric the Collector may
// export, which do not depend on its sources.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs().all {
		ch <- d
	}
}

// Collect reads the Stats of every source and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs()
	type named[T any] struct {
		name string
		src  T
	}
	c.mu.Lock()
	pools := make([]named[PoolSource], 0, len(c.pools))
	for n, p := range c.pools {
		pools = append(pools, named[PoolSource]{n, p})
	}
	frontends := make([]named[FrontendSource], 0, len(c.frontends))
	for n, f := range c.frontends {
		frontends = append(frontends, named[FrontendSource]{n, f})
	}
	logs := make([]named[AccessLogSource], 0, len(c.accessLogs))
	for n, a := range c.accessLogs {
		logs = append(logs, named[AccessLogSource]{n, a})
	}
	shared := make([]named[SharedSource], 0, len(c.shared))
	for n, s := range c.shared {
		shared = append(shared, named[SharedSource]{n, s})
	}
	c.mu.Unlock()

	for _, s := range shared {
		st := s.src.SharedStats()
		counter(ch, d.sharedRequests, float64(st.Requests), s.name)
		counter(ch, d.sharedFallbacks, float64(st.Fallbacks), s.name)
		counter(ch, d.sharedErrors, float64(st.Errors), s.name)
	}
	for _, a := range logs {
		counter(ch, d.logDropped, float64(a.src.Dropped()), a.name)
		counter(ch, d.logErrors, float64(a.src.Errors()), a.name)
	}
	now := time.Now()
	for _, f := range frontends {
		d.collectFrontend(ch, f.name, f.src.Stats())
	}
	for _, p := range pools {
		d.collectPool(ch, p.name, p.src.Stats(), now)
	}
}

func (c *Collector) descs() *descs {
	c.once.Do(func() {
		ns := c.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		c.d = newDescs(ns)
	})
	return c.d
}

// Handler returns an http.Handler that serves the metrics of c alone, in
// the Prometheus exposition formats, from a registry of its own. It panics
// if c cannot be registered (its Namespace is not a valid metric name
// prefix).
func Handler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// serverStates are the values of the state label of _server_status, as
// HAProxy exports them (its NOLB and STOPPED have no lbkit equivalent).
var serverStates = []string{"DOWN", "UP", "MAINT", "DRAIN"}

// serverState maps a server's state to HAProxy's: maintenance first, then
// down, then draining, as HAProxy ranks them.
func serverState(s lb.ServerStats) string {
	switch {
	case s.State == lb.StateMaintenance:
		return "MAINT"
	case !s.State.Pickable():
		return "DOWN"
	case s.Draining || s.Removed:
		return "DRAIN"
	default:
		return "UP"
	}
}

// checkStatuses are the values of the state label of _server_check_status:
// HAProxy's check statuses (lb.CheckResult.Status); a status outside this
// list is exported too, while it is the current one.
var checkStatuses = []string{
	"HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP",
	"L7TOUT", "L7RSP", "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
}

// responseClasses are the values of the code label of _http_responses_total.
var responseClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func responseCounts(r lb.ResponseStats) [6]uint64 {
	return [6]uint64{r.Class1xx, r.Class2xx, r.Class3xx, r.Class4xx, r.Class5xx, r.Other}
}

// traffic are the descriptions of the metrics of lb.TrafficStats, for
// backends or for servers.
type traffic struct {
	curSessions, maxSessions, sessions, requests, bytesIn, bytesOut,
	responses, connectErrors, responseErrors, clientAborts, serverAborts,
	retries, redispatches, curQueue, maxQueue,
	queueTime, connectTime, responseTime, totalTime *prometheus.Desc
}

func newTraffic(ns, sub string, labels []string, add func(string, string, []string) *prometheus.Desc) traffic {
	codeLabels := append(slices.Clone(labels), "code")
	return traffic{
		curSessions:    add(sub+"_current_sessions", "Number of current sessions (scur).", labels),
		maxSessions:    add(sub+"_max_sessions", "Maximum observed number of current sessions (smax).", labels),
		sessions:       add(sub+"_sessions_total", "Total number of sessions, failed connection attempts included (stot).", labels),
		requests:       add(sub+"_http_requests_total", "Total number of HTTP requests that ended, with a response or not (req_tot).", labels),
		bytesIn:        add(sub+"_bytes_in_total", "Bytes received from clients and sent to servers (bin).", labels),
		bytesOut:       add(sub+"_bytes_out_total", "Bytes received from servers and sent to clients (bout).", labels),
		responses:      add(sub+"_http_responses_total", "Total number of HTTP responses from servers, by class (hrsp_1xx .. hrsp_other).", codeLabels),
		connectErrors:  add(sub+"_connection_errors_total", "Total number of failed connection attempts to servers (econ).", labels),
		responseErrors: add(sub+"_response_errors_total", "Total number of requests that got no complete response from the server (eresp).", labels),
		clientAborts:   add(sub+"_client_aborts_total", "Total number of requests the client abandoned before the end of the response, and of L4 sessions whose client connection failed (cli_abrt).", labels),
		serverAborts:   add(sub+"_server_aborts_total", "Total number of responses the server broke off, and of L4 sessions whose server connection failed (srv_abrt).", labels),
		retries:        add(sub+"_retry_warnings_total", "Total number of failed connection attempts that were retried (wretr).", labels),
		redispatches:   add(sub+"_redispatch_warnings_total", "Total number of retries sent to another server (wredis).", labels),
		curQueue:       add(sub+"_current_queue", "Number of sessions waiting for a free connection slot (qcur).", labels),
		maxQueue:       add(sub+"_max_queue", "Maximum observed number of queued sessions (qmax).", labels),
		queueTime:      add(sub+"_queue_time_seconds", "Time spent in the queue by sessions that waited (qtime, Tw).", labels),
		connectTime:    add(sub+"_connect_time_seconds", "Time to connect to a server, PROXY header and TLS handshake included (ctime, Tc).", labels),
		responseTime:   add(sub+"_response_time_seconds", "Time from the server pick to the response headers (rtime, Tr).", labels),
		totalTime:      add(sub+"_total_time_seconds", "Time from the server pick to the end of the session (ttime, Tt).", labels),
	}
}

// descs are the descriptions of every metric of a Collector.
type descs struct {
	all []*prometheus.Desc

	feCurSessions, feMaxSessions, feConnections, feRate, feRateMax,
	feRequests, feDenied, feErrors, feBytesIn, feBytesOut, feResponses,
	feClientAborts *prometheus.Desc

	beStatus, beActive, beBackup *prometheus.Desc
	be                           traffic

	svStatus, svWeight, svLimit, svCheckFailures, svCheckDowns,
	svDowntime, svLastChange, svCheckStatus, svCheckCode,
	svCheckDuration, svCheckAge *prometheus.Desc
	sv traffic

	logDropped, logErrors *prometheus.Desc

	sharedRequests, sharedFallbacks, sharedErrors *prometheus.Desc
}

func newDescs(ns string) *descs {
	d := &descs{}
	add := func(name, help string, labels []string) *prometheus.Desc {
		desc := prometheus.NewDesc(ns+"_"+name, help, labels, nil)
		d.all = append(d.all, desc)
		return desc
	}
	proxy := []string{"proxy"}
	proxyCode := []string{"proxy", "code"}
	proxyState := []string{"proxy", "state"}
	server := []string{"proxy", "server"}
	serverState := []string{"proxy", "server", "state"}

	d.feCurSessions = add("frontend_current_sessions", "Number of current client connections (scur).", proxy)
	d.feMaxSessions = add("frontend_max_sessions", "Maximum observed number of current client connections (smax).", proxy)
	d.feConnections = add("frontend_connections_total", "Total number of client connections accepted (conn_tot).", proxy)
	d.feRate = add("frontend_current_session_rate", "Client connections accepted over the last second (conn_rate).", proxy)
	d.feRateMax = add("frontend_connections_rate_max", "Maximum observed number of client connections accepted in a second (conn_rate_max).", proxy)
	d.feRequests = add("frontend_http_requests_total", "Total number of HTTP requests received, denied ones included (req_tot).", proxy)
	d.feDenied = add("frontend_requests_denied_total", "Total number of connections or requests refused by access rules or limits (dreq).", proxy)
	d.feErrors = add("frontend_request_errors_total", "Total number of failed accepts, or of requests that got an error response from the proxy (ereq).", proxy)
	d.feBytesIn = add("frontend_bytes_in_total", "Bytes received from clients (bin).", proxy)
	d.feBytesOut = add("frontend_bytes_out_total", "Bytes sent to clients (bout).", proxy)
	d.feResponses = add("frontend_http_responses_total", "Total number of HTTP responses sent to clients, by class (hrsp_1xx .. hrsp_other).", proxyCode)
	d.feClientAborts = add("frontend_client_aborts_total", "Total number of requests the client abandoned before the end of the response (cli_abrt).", proxy)

	d.beStatus = add("backend_status", "Whether the backend has a pickable server (state UP) or not (DOWN): 1 for the current state, 0 for the other.", proxyState)
	d.beActive = add("backend_active_servers", "Number of pickable regular servers (act).", proxy)
	d.beBackup = add("backend_backup_servers", "Number of pickable backup servers (bck).", proxy)
	d.be = newTraffic(ns, "backend", proxy, add)

	d.svStatus = add("server_status", "State of the server (status): 1 for the current state, 0 for the others.", serverState)
	d.svWeight = add("server_weight", "Effective weight of the server (weight).", server)
	d.svLimit = add("server_limit_sessions", "Session limit of the server, when it has one (slim).", server)
	d.svCheckFailures = add("server_check_failures_total", "Total number of failed health checks (chkfail).", server)
	d.svCheckDowns = add("server_check_up_down_total", "Total number of transitions to DOWN (chkdown).", server)
	d.svDowntime = add("server_downtime_seconds_total", "Total time spent DOWN (downtime).", server)
	d.svLastChange = add("server_check_last_change_seconds", "Time since the last change of state (lastchg).", server)
	d.svCheckStatus = add("server_check_status", "Status of the last health check (check_status): 1 for the current status, 0 for the others.", serverState)
	d.svCheckCode = add("server_check_code", "Response code of the last health check, 0 when its protocol has none (check_code).", server)
	d.svCheckDuration = add("server_check_duration_seconds", "Duration of the last health check (check_duration).", server)
	d.svCheckAge = add("server_check_age_seconds", "Time since the last health check started (last_chk).", server)
	d.sv = newTraffic(ns, "server", server, add)

	log := []string{"log"}
	d.logDropped = add("access_log_dropped_total", "Total number of access records dropped because the log's buffer was full.", log)
	d.logErrors = add("access_log_errors_total", "Total number of access records the log's sink failed to write.", log)

	shared := []string{"shared"}
	d.sharedRequests = add("shared_requests_total", "Total number of requests to the store of state shared between load balancers.", shared)
	d.sharedFallbacks = add("shared_fallbacks_total", "Total number of decisions taken locally because the shared store failed, was slow or was known to be down.", shared)
	d.sharedErrors = add("shared_errors_total", "Total number of failed or dropped writes to the shared store.", shared)
	return d
}

func (d *descs) collectFrontend(ch chan<- prometheus.Metric, name string, s lb.FrontendStats) {
	gauge(ch, d.feCurSessions, float64(s.ConnCur), name)
	gauge(ch, d.feMaxSessions, float64(s.ConnMax), name)
	counter(ch, d.feConnections, float64(s.ConnTotal), name)
	gauge(ch, d.feRate, float64(s.ConnRate), name)
	gauge(ch, d.feRateMax, float64(s.ConnRateMax), name)
	counter(ch, d.feRequests, float64(s.Requests), name)
	counter(ch, d.feDenied, float64(s.Denied), name)
	counter(ch, d.feErrors, float64(s.Errors), name)
	counter(ch, d.feBytesIn, float64(s.BytesIn), name)
	counter(ch, d.feBytesOut, float64(s.BytesOut), name)
	for i, n := range responseCounts(s.Responses) {
		counter(ch, d.feResponses, float64(n), name, responseClasses[i])
	}
	counter(ch, d.feClientAborts, float64(s.ClientAborts), name)
}

func (d *descs) collectPool(ch chan<- prometheus.Metric, name string, s lb.PoolStats, now time.Time) {
	up := s.Active+s.Backup > 0
	gauge(ch, d.beStatus, boolValue(up), name, "UP")
	gauge(ch, d.beStatus, boolValue(!up), name, "DOWN")
	gauge(ch, d.beActive, float64(s.Active), name)
	gauge(ch, d.beBackup, float64(s.Backup), name)
	d.be.collect(ch, &s.TrafficStats, name)

	seen := make(map[string]bool, len(s.Servers))
	for i := range s.Servers {
		sv := &s.Servers[i]
		if seen[sv.Name] { // one series per label set, or the scrape fails
			continue
		}
		seen[sv.Name] = true
		d.collectServer(ch, name, sv, now)
	}
}

func (d *descs) collectServer(ch chan<- prometheus.Metric, proxy string, s *lb.ServerStats, now time.Time) {
	lv := []string{proxy, s.Name}
	state := serverState(*s)
	for _, st := range serverStates {
		gauge(ch, d.svStatus, boolValue(st == state), proxy, s.Name, st)
	}
	gauge(ch, d.svWeight, float64(s.Weight), lv...)
	if s.MaxConns > 0 {
		gauge(ch, d.svLimit, float64(s.MaxConns), lv...)
	}
	h := &s.Health
	counter(ch, d.svCheckFailures, float64(h.Failures), lv...)
	counter(ch, d.svCheckDowns, float64(h.Downs), lv...)
	counter(ch, d.svDowntime, h.Downtime.Seconds(), lv...)
	if !s.Since.IsZero() {
		gauge(ch, d.svLastChange, max(now.Sub(s.Since), 0).Seconds(), lv...)
	}
	if last := h.Last; !last.Time.IsZero() {
		for _, st := range checkStatuses {
			gauge(ch, d.svCheckStatus, boolValue(st == last.Status), proxy, s.Name, st)
		}
		if last.Status != "" && !slices.Contains(checkStatuses, last.Status) {
			gauge(ch, d.svCheckStatus, 1, proxy, s.Name, last.Status)
		}
		gauge(ch, d.svCheckCode, float64(last.Code), lv...)
		gauge(ch, d.svCheckDuration, last.Duration.Seconds(), lv...)
		gauge(ch, d.svCheckAge, max(now.Sub(last.Time), 0).Seconds(), lv...)
	}
	d.sv.collect(ch, &s.TrafficStats, lv...)
}

func (t *traffic) collect(ch chan<- prometheus.Metric, s *lb.TrafficStats, lv ...string) {
	gauge(ch, t.curSessions, float64(s.Cur), lv...)
	gauge(ch, t.maxSessions, float64(s.Max), lv...)
	counter(ch, t.sessions, float64(s.Total), lv...)
	counter(ch, t.requests, float64(s.Requests), lv...)
	counter(ch, t.bytesIn, float64(s.BytesIn), lv...)
	counter(ch, t.bytesOut, float64(s.BytesOut), lv...)
	codeLV := append(slices.Clone(lv), "")
	for i, n := range responseCounts(s.Responses) {
		codeLV[len(codeLV)-1] = responseClasses[i]
		counter(ch, t.responses, float64(n), codeLV...)
	}
	counter(ch, t.connectErrors, float64(s.ConnectErrors), lv...)
	counter(ch, t.responseErrors, float64(s.ResponseErrors), lv...)
	counter(ch, t.clientAborts, float64(s.ClientAborts), lv...)
	counter(ch, t.serverAborts, float64(s.ServerAborts), lv...)
	counter(ch, t.retries, float64(s.Retries), lv...)
	counter(ch, t.redispatches, float64(s.Redispatches), lv...)
	gauge(ch, t.curQueue, float64(s.QueueCur), lv...)
	gauge(ch, t.maxQueue, float64(s.QueueMax), lv...)
	histogram(ch, t.queueTime, &s.QueueTime, lv...)
	histogram(ch, t.connectTime, &s.ConnectTime, lv...)
	histogram(ch, t.responseTime, &s.ResponseTime, lv...)
	histogram(ch, t.totalTime, &s.TotalTime, lv...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, lv ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, lv ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
}

// histogram sends h with its bounds in seconds; the observations past the
// last bound are in its count alone, as Prometheus' +Inf bucket.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h *lb.HistogramSnapshot, lv ...string) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			buckets[b.Seconds()] = h.Counts[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, lv...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
