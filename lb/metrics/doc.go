// Package metrics exports lbkit's statistics to Prometheus.
//
// A [Collector] is a [prometheus.Collector] over the pools and frontends
// that the host program registers by name. It reads their Stats snapshots
// when Prometheus scrapes, and only then: the data path pays nothing for
// the exporter beyond the counters lb keeps anyway. Sources come and go at
// run time, as configurations reload; every method is safe for concurrent
// use.
//
//	c := &metrics.Collector{}          // namespace "lbkit"
//	c.AddPool("web", pool)             // lb.Pool: backend and server metrics
//	c.AddFrontend("www", proxy)        // lb.ReverseProxy or lb.TCPFrontend
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(c)
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// For a Collector alone, mux.Handle("/metrics", metrics.Handler(c)) does
// the same (see [Handler]). A program that exports metrics of its own
// registers the Collector in its registry (prometheus.DefaultRegisterer
// included) beside them. Mount the handler where only those who may read
// the statistics reach it: server names and counts tell about the
// infrastructure behind the proxy.
//
// # Names
//
// Names and labels follow HAProxy's built-in Prometheus exporter (promex),
// under the namespace [Collector.Namespace] instead of "haproxy", so that
// dashboards and alerts written for HAProxy carry over with the prefix
// changed: <ns>_frontend_..., <ns>_backend_..., <ns>_server_..., the label
// proxy naming the frontend or pool (the name it was added with) and the
// label server naming the server. Counters end in _total; HTTP responses
// count per class with the label code ("1xx" .. "5xx", "other").
//
// Where HAProxy exports averages over the last 1024 sessions
// (queue_time_average_seconds and its siblings), lbkit exports histograms,
// which Prometheus can average over any window and cut into quantiles:
// <ns>_backend_queue_time_seconds, _connect_time_seconds,
// _response_time_seconds and _total_time_seconds, and the same per server,
// with the buckets of lb.HistogramSnapshot in seconds.
//
// The state of a server is exported as HAProxy 2.4 and later do:
// <ns>_server_status has one series per state, labelled state="UP",
// "DOWN", "MAINT" or "DRAIN", and the one that holds is 1, the others 0.
// A server going down (failing checks, still pickable) is UP, one going up
// is DOWN, a draining or removed server that is not down nor in
// maintenance is DRAIN. Alerts test for the state they mean
// (<ns>_server_status{state="DOWN"} == 1) and stay right if states are
// added. <ns>_backend_status does the same with "UP" (a server is
// pickable) and "DOWN". The result of the last health check is
// <ns>_server_check_status, one series per HAProxy check status (L4OK,
// L7STS, ...) of which the current one is 1, with
// <ns>_server_check_code, _check_duration_seconds and
// _check_age_seconds (time since the check started), all absent until a
// first check has run.
//
// Each metric's help text names the HAProxy stats field it carries. Pools
// and frontends export the same metrics at L4 and L7; the HTTP ones
// (_http_requests_total, _http_responses_total) stay 0 at L4.
//
// Access logs added with AddAccessLog (an accesslog.Writer) export
// <ns>_access_log_dropped_total and <ns>_access_log_errors_total with the
// label log: records dropped because the log's buffer was full, and records
// its sink failed to write. HAProxy has no such metric; a log that never
// blocks the data path must say what it lost.
//
// State shared between load balancers through Redis, added with
// AddShared (a sticky/redistable.Table, an lb/redisrate.Limiter, anything
// with a SharedStats method), exports <ns>_shared_requests_total,
// <ns>_shared_fallbacks_total and <ns>_shared_errors_total with the label
// shared. A fallback is a decision an instance took alone because the
// store was away or slow: while they rise, the fleet does not agree.
package metrics
