package lb

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// Access logs
//
// A frontend with an AccessLog hands it one AccessRecord per HTTP request
// (ReverseProxy) or per L4 session (TCPFrontend → Pool.ServeConn), built
// from the clock reads the statistics already make. Without an AccessLog
// nothing is built: the data path pays one nil check. Formatters (JSON
// through log/slog, HAProxy's httplog and tcplog text) and a non-blocking
// writer are in package lb/accesslog.

// AccessLogger receives the access records of a frontend. Log is called
// after the request or session ended, on the goroutine that served it or,
// for an L4 session that the event loop carried (see Pool.ServeConn), on a
// short-lived goroutine of its own; it should not block: hand the record to
// a buffer (lb/accesslog's Writer does). The record belongs to the caller
// and is reused after Log returns: copy what you keep.
type AccessLogger interface {
	Log(r *AccessRecord)
}

// AccessLoggerFunc adapts a function to AccessLogger.
type AccessLoggerFunc func(r *AccessRecord)

// Log calls f(r).
func (f AccessLoggerFunc) Log(r *AccessRecord) { f(r) }

// NoServerName is the server name an access record carries when no server
// was chosen, as HAProxy logs it.
const NoServerName = "<NOSRV>"

// AccessRecord describes one HTTP request or one L4 session, as HAProxy's
// httplog and tcplog lines do. Timers follow HAProxy's (configuration
// manual, section 8.4): each is the duration of a phase, or -1 when the
// phase was not reached.
type AccessRecord struct {
	// Time is when the frontend accepted the request (L7) or the
	// connection (L4): HAProxy's accept_date.
	Time time.Time
	// Client is the client's address and port.
	Client netip.AddrPort
	// Frontend, Backend and Server name the frontend, the Pool and the
	// server; Server is NoServerName when none was chosen.
	Frontend, Backend, Server string
	// HTTP is true for a request of a ReverseProxy, false for an L4
	// session.
	HTTP bool

	// TR is the time to receive the request headers: 0 for HTTP, as
	// net/http hands the handler a request once its headers are read, and
	// -1 for an L4 session.
	TR time.Duration
	// Tw is the time from the request's (session's) start to the choice of
	// a server, queueing included.
	Tw time.Duration
	// Tc is the time to connect to the server; 0 for an HTTP request on a
	// reused connection.
	Tc time.Duration
	// Tr is the time the server took to send its response headers (HTTP).
	Tr time.Duration
	// Ta is the request's total active time (HTTP); for an L4 session, Tt
	// is the session's total time.
	Ta, Tt time.Duration

	// Status is the HTTP status sent to the client (HTTP only).
	Status int
	// BytesIn counts the bytes received from the client (request body at
	// L7), BytesOut the bytes sent to it (response body at L7): HAProxy's
	// bytes_uploaded and bytes_read.
	BytesIn, BytesOut int64
	// Retries counts the connection attempts that failed and were retried;
	// Redispatch reports that the last one went to another server.
	Retries    int
	Redispatch bool
	// Termination is HAProxy's two-letter session state at disconnection:
	// who or what ended it (C client, S server, P proxy, c client
	// timeout, s server timeout, R resource, I internal, D down, - normal)
	// and in which phase (R request, Q queue, C connect, H headers, D data,
	// L last, T tarpit, - normal). "--" is a normal end. A request the
	// proxy refused before choosing a server (invalid framing, over
	// MaxBodyBytes or MaxHeaderCount) is "PR"; one whose body turned out
	// invalid or too large while it was forwarded is "PD"; a client that
	// broke off its body is "CR" before forwarding and "CD" after, as in
	// HAProxy's configuration.txt, section 8.5.
	Termination string
	// StickyPinned reports that the server came from the Pool's Affinity
	// (a sticky cookie or source table), not from the Balancer.
	StickyPinned bool
	// StickyMoved reports that the client was pinned to a server that
	// could not be used (down, draining, removed, or gone while the client
	// waited for it), so the Balancer chose another one and the client was
	// re-pinned (Lease.Moved). Affinities report such pins through
	// PinReporter; package sticky's Cookie and SourceIP do. HAProxy's
	// cookie flags "DI" (a cookie naming a down server, a new one
	// inserted) say the same.
	StickyMoved bool

	// Connection and queue counts, named as HAProxy's. They are read
	// from live counters (atomic loads) while the request or session still
	// holds its client connection and its server, so that it counts
	// itself: at the end of an L4 session, when the server's response
	// headers arrive at L7 (when the server was chosen, if none arrived).
	// A record without a server reads the Pool's counts when it is made.
	//
	//   - ActiveConns, actconn: lbkit keeps no process-wide count, so it
	//     is FrontendConns.
	//   - FrontendConns, feconn: the frontend's open client connections.
	//     At L7 they are counted only when the ReverseProxy's ConnState
	//     hook is set on the http.Server, and are 0 otherwise.
	//   - BackendConns, beconn: the Pool's current sessions (leases).
	//   - ServerConns, srv_conn: the server's active leases.
	//   - ServerQueue, srv_queue: the sessions waiting for this server
	//     (clients pinned to it while it is full).
	//   - BackendQueue, backend_queue: the sessions waiting in the Pool's
	//     queue.
	ActiveConns, FrontendConns, BackendConns, ServerConns int64
	ServerQueue, BackendQueue                             int64

	// Method, URI, Proto and Host are those of the request (HTTP only).
	Method, URI, Proto, Host string
	// RequestID is the request's ID (ReverseProxy.RequestID); TraceID and
	// SpanID are the W3C trace-id and the parent-id the proxy sent to the
	// server (ReverseProxy.Trace). Empty when not enabled.
	RequestID, TraceID, SpanID string
}

// accessState is the per-request state of a ReverseProxy with an
// AccessLog, a RequestID or a Trace, found through the request's context.
type accessState struct {
	rec   AccessRecord
	start int64 // monoNow at ServeHTTP
	rw    accessWriter

	tc         atomic.Int64 // connect time of the request's new connection (dialAddr)
	leased     bool         // a lease was acquired
	srvStatus  int          // the status of the server's response
	err        error        // the error that ended the request, if any
	cliAbort   bool         // the client went away while the response was copied
	srvAbort   bool         // the server broke off the response body
	noServer   bool         // no pickable server (Fallback or 503)
	proxyError bool         // ModifyResponse failed
	denied     bool         // refused by the proxy's Limits (429)
	cliTimeout bool         // the client was too slow (ClientTimeout, MinBodyRate)

	traceparent, tracestate string
}

type accessKey struct{}

var accessStates = sync.Pool{New: func() any { return new(accessState) }}

func accessFrom(ctx context.Context) *accessState {
	st, _ := ctx.Value(accessKey{}).(*accessState)
	return st
}

// accessWriter records the status and body bytes of the response. Unwrap
// lets http.ResponseController (httputil's flushes and hijacks) reach the
// connection's writer.
type accessWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 && w.status != http.StatusSwitchingProtocols {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush flushes the underlying writer when it can.
func (w *accessWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap returns the underlying ResponseWriter.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpTermination returns the two-letter termination state of an HTTP
// request.
func (st *accessState) httpTermination(clientGone bool) string {
	err := st.err
	switch {
	case st.denied:
		return "PR"
	case st.proxyError:
		return "PH"
	case st.cliTimeout:
		return "cD"
	case err == nil && st.noServer:
		if st.rw.status == http.StatusServiceUnavailable {
			return "SC"
		}
		return "--"
	case err == nil:
		switch {
		case st.srvAbort:
			return "SD"
		case st.cliAbort || clientGone:
			return "CD"
		}
		return "--"
	case errors.Is(err, ErrClientAborted):
		// HAProxy's CR: the client aborted before sending a full
		// request; CD once it was being forwarded.
		if st.leased {
			return "CD"
		}
		return "CR"
	case clientFault(err):
		// HAProxy's PR: the proxy blocked an invalid or oversized
		// request before forwarding it (400, 413, 431); PD: it blocked
		// an invalid chunked body while forwarding it.
		if st.leased {
			return "PD"
		}
		return "PR"
	case errors.Is(err, ErrNoServer):
		return "SC"
	case errors.Is(err, ErrQueueTimeout):
		return "sQ"
	}
	var ce *ConnectError
	connect := errors.As(err, &ce)
	if clientGone {
		switch {
		case !st.leased:
			return "CQ"
		case connect:
			return "CC"
		}
		return "CH"
	}
	if connect {
		if isTimeout(err) {
			return "sC"
		}
		return "SC"
	}
	if isTimeout(err) {
		return "sH"
	}
	return "SH"
}

// l4Termination returns the termination state of an L4 session that was
// connected to its server, from pipe.Proxy's error.
func l4Termination(err error, ctxDone bool) string {
	switch {
	case err == nil:
		return "--"
	case ctxDone:
		return "KD" // killed: the frontend shut the session down
	case isTimeout(err):
		return "cD"
	case clientBroke(err):
		return "CD"
	}
	return "SD"
}

// clientBroke reports whether the copy of an L4 session ended because the
// client's connection failed (a reset while reading from it or writing to
// it), rather than the server's.
func clientBroke(err error) bool {
	var pe *pipe.Error
	return errors.As(err, &pe) && pe.Client()
}

// serverBroke reports whether the copy of an L4 session ended because the
// server's connection failed.
func serverBroke(err error) bool {
	var pe *pipe.Error
	return errors.As(err, &pe) && pe.Server()
}

// l4ConnectTermination returns the termination state of an L4 session
// that never reached a server.
func l4ConnectTermination(err error, leased bool, clientGone bool) string {
	var ce *ConnectError
	switch {
	case errors.Is(err, ErrNoServer):
		return "SC"
	case errors.Is(err, ErrQueueTimeout):
		return "sQ"
	case clientGone && !leased:
		return "CQ"
	case errors.As(err, &ce) && isTimeout(err):
		return "sC"
	}
	return "SC"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pipe.ErrIdle) ||
		errors.As(err, &ne) && ne.Timeout()
}

// traced reports whether requests carry an accessState.
func (p *ReverseProxy) traced() bool { return p.AccessLog != nil || p.RequestID || p.Trace }

// serveTraced serves a request with an accessState in its context: it
// assigns the request ID and trace, and hands the AccessRecord to AccessLog
// at the end.
func (p *ReverseProxy) serveTraced(w http.ResponseWriter, r *http.Request) {
	st := accessStates.Get().(*accessState)
	st.start = monoNow()
	rec := &st.rec
	rec.Time = clockBase.Add(time.Duration(st.start))
	rec.HTTP = true
	rec.Frontend = p.Name
	rec.Server = NoServerName
	rec.Tw, rec.Tc, rec.Tr, rec.Tt = -1, -1, -1, -1
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		rec.Client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	rec.Method, rec.URI, rec.Proto, rec.Host = r.Method, r.RequestURI, r.Proto, r.Host
	if rec.URI == "" {
		rec.URI = r.URL.RequestURI()
	}
	if pool := p.Pool; pool != nil {
		rec.Backend = pool.Name
	}
	if p.RequestID {
		id := ""
		if p.TrustRequestID {
			id = r.Header.Get(p.requestIDHeader())
		}
		if !validRequestID(id) {
			id = newRequestID()
		}
		rec.RequestID = id
	}
	if p.Trace {
		tp, keep := nextTraceParent(r.Header.Get("Traceparent"))
		st.traceparent = tp.String()
		if keep {
			st.tracestate = r.Header.Get("Tracestate")
		}
		rec.TraceID = st.traceparent[3:35]
		rec.SpanID = st.traceparent[36:52]
	}
	st.rw.ResponseWriter = w
	// httputil.ReverseProxy panics with http.ErrAbortHandler when the copy
	// of the response fails: the record is written while the panic goes on.
	aborted := true
	defer func() {
		if aborted {
			st.cliAbort = st.cliAbort || !st.srvAbort
			p.endTraced(st, r)
		}
	}()
	p.serve(&st.rw, r.WithContext(context.WithValue(r.Context(), accessKey{}, st)))
	aborted = false
	p.endTraced(st, r)
}

// endTraced completes the record of a request and hands it to AccessLog.
func (p *ReverseProxy) endTraced(st *accessState, r *http.Request) {
	rec := &st.rec
	rec.Ta = time.Duration(monoNow() - st.start)
	if !st.leased {
		rec.Tw, rec.Tc, rec.Tr = -1, -1, -1
	} else if st.err != nil {
		rec.Tr = -1
		var ce *ConnectError
		if errors.As(st.err, &ce) {
			rec.Tc = -1
		}
	}
	rec.Status = st.rw.status
	if rec.Status == 0 {
		// Nothing went through the ResponseWriter: an upgrade's 101 is
		// written on the hijacked connection.
		rec.Status = cmp.Or(st.srvStatus, http.StatusOK)
	}
	rec.BytesOut = st.rw.n
	rec.FrontendConns = p.stats.cur.Load()
	rec.ActiveConns = rec.FrontendConns
	if !st.leased && p.Pool != nil {
		rec.setCounts(p.Pool.liveCounts(nil))
	}
	st.cliTimeout = guardOf(st.rw.ResponseWriter).timedOut()
	rec.Termination = st.httpTermination(r.Context().Err() != nil)
	if p.AccessLog != nil {
		p.AccessLog.Log(rec)
	}
	*st = accessState{}
	accessStates.Put(st)
}

func (p *ReverseProxy) requestIDHeader() string {
	if p.RequestIDHeader != "" {
		return p.RequestIDHeader
	}
	return DefaultRequestIDHeader
}

// setTraceHeaders sets the request ID and trace headers of a request to a
// server.
func (p *ReverseProxy) setTraceHeaders(in, out *http.Request) {
	st := accessFrom(in.Context())
	if st == nil {
		return
	}
	h := out.Header
	if p.RequestID {
		h.Set(p.requestIDHeader(), st.rec.RequestID)
	}
	if p.Trace {
		h["Traceparent"] = []string{st.traceparent}
		if st.tracestate != "" {
			h["Tracestate"] = []string{st.tracestate}
		} else {
			delete(h, "Tracestate")
		}
	}
}

// connectInfo reports how Pool.connect reached its server, for an L4
// access record.
type connectInfo struct {
	tc         time.Duration // from the pick to the connection
	retries    int
	redispatch bool
	leased     bool
	counts     liveCounts // read while the session held its server
}

// liveCounts are a Pool's and a server's connection and queue counts, for
// an access record.
type liveCounts struct {
	beconn, srvConn, srvQueue, beQueue int64
}

// liveCounts reads the counts of p and of s (nil for none): atomic loads,
// no lock.
func (p *Pool) liveCounts(s *Server) liveCounts {
	c := liveCounts{beconn: p.traffic.cur.Load(), beQueue: p.traffic.queueCur.Load()}
	if s != nil && s.rt != nil {
		c.srvConn = s.rt.active.Load()
		c.srvQueue = s.rt.traffic.queueCur.Load()
	}
	return c
}

// setCounts copies c into the record.
func (r *AccessRecord) setCounts(c liveCounts) {
	r.BackendConns, r.ServerConns, r.ServerQueue, r.BackendQueue = c.beconn, c.srvConn, c.srvQueue, c.beQueue
}

// logSession builds and hands the AccessRecord of an L4 session to c's
// AccessLogger. server is nil when no server was reached.
func (p *Pool) logSession(c *Conn, ci *connectInfo, lease Lease, err error, connected bool, up, down int64, ctxDone bool) {
	end := monoNow()
	acc := int64(c.Info.Accepted.Sub(clockBase))
	rec := AccessRecord{
		Time: c.Info.Accepted, Client: c.Info.Remote, Frontend: c.Info.Frontend, Backend: p.Name,
		Server: NoServerName, TR: -1, Tw: -1, Tc: -1, Tr: -1, Ta: -1, Tt: time.Duration(max(end-acc, 0)),
		BytesIn: up, BytesOut: down, Retries: ci.retries, Redispatch: ci.redispatch,
	}
	if c.fe != nil {
		rec.FrontendConns = c.fe.cur.Load()
		rec.ActiveConns = rec.FrontendConns
	}
	if lease.Server != nil {
		rec.Server = lease.Server.Name
		rec.StickyPinned = lease.Sticky
		rec.StickyMoved = lease.Moved
		rec.Tw = time.Duration(max(lease.start-acc, 0))
		rec.Tc = ci.tc
		rec.setCounts(ci.counts)
	} else {
		rec.setCounts(p.liveCounts(nil))
	}
	if connected {
		rec.Termination = l4Termination(err, ctxDone)
	} else {
		rec.Termination = l4ConnectTermination(err, ci.leased, ctxDone)
	}
	c.access.Log(&rec)
}
