package statuspage

import (
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Report is what the page shows, as served in JSON (?format=json). Rates
// are per second; durations are in seconds.
type Report struct {
	// Time is when the report was made.
	Time time.Time `json:"time"`
	// Frontends are the frontends added with AddFrontend, in that order.
	Frontends []Frontend `json:"frontends"`
	// Backends are the pools added with AddPool, in that order.
	Backends []Backend `json:"backends"`
}

// Frontend is one frontend of a Report.
type Frontend struct {
	// Name is the name the frontend was added with (pxname).
	Name string `json:"name"`
	// SessionsCur, SessionsMax and SessionsTotal are the client
	// connections open, the most open at once, and all accepted (scur,
	// smax, stot).
	SessionsCur   int64  `json:"sessions_cur"`
	SessionsMax   int64  `json:"sessions_max"`
	SessionsTotal uint64 `json:"sessions_total"`
	// ConnRate and ConnRateMax are the connections accepted over the last
	// second, and the most seen (conn_rate, conn_rate_max).
	ConnRate    int64 `json:"conn_rate"`
	ConnRateMax int64 `json:"conn_rate_max"`
	// RequestRate is the HTTP requests received per second, measured by the
	// Handler between renderings (req_rate).
	RequestRate float64 `json:"request_rate"`
	// Requests is the HTTP requests received (req_tot).
	Requests uint64 `json:"requests"`
	// BytesIn and BytesOut are the bytes from and to clients (bin, bout).
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// Denied counts connections or requests refused by access rules or by
	// the frontend's limits (dreq).
	Denied uint64 `json:"denied"`
	// Errors counts failures of the frontend itself (ereq).
	Errors uint64 `json:"errors"`
	// ClientAborts counts requests the client abandoned (cli_abrt).
	ClientAborts uint64 `json:"client_aborts"`
	// Responses counts responses to clients by class.
	Responses Responses `json:"responses"`
}

// Responses counts HTTP responses by status class (hrsp_1xx .. hrsp_other).
type Responses struct {
	Class1xx uint64 `json:"1xx"`   // hrsp_1xx
	Class2xx uint64 `json:"2xx"`   // hrsp_2xx
	Class3xx uint64 `json:"3xx"`   // hrsp_3xx
	Class4xx uint64 `json:"4xx"`   // hrsp_4xx
	Class5xx uint64 `json:"5xx"`   // hrsp_5xx
	Other    uint64 `json:"other"` // hrsp_other: statuses outside 100-599
}

// Traffic are the counters that backends and servers share.
type Traffic struct {
	// SessionsCur, SessionsMax and SessionsTotal are the sessions in
	// progress, the most at once and all started (scur, smax, stot).
	SessionsCur   int64  `json:"sessions_cur"`
	SessionsMax   int64  `json:"sessions_max"`
	SessionsTotal uint64 `json:"sessions_total"`
	// SessionRate and RequestRate are the sessions started and HTTP
	// requests ended per second, measured by the Handler between renderings
	// (rate, req_rate).
	SessionRate float64 `json:"session_rate"`
	RequestRate float64 `json:"request_rate"`
	// Requests is the HTTP requests that ended (req_tot).
	Requests uint64 `json:"requests"`
	// QueueCur and QueueMax are the sessions waiting for a free slot now and
	// at most (qcur, qmax).
	QueueCur int64 `json:"queue_cur"`
	QueueMax int64 `json:"queue_max"`
	// BytesIn and BytesOut are the bytes to and from servers (bin, bout).
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// Responses counts server responses by class.
	Responses Responses `json:"responses"`
	// ConnectErrors, ResponseErrors, Retries, Redispatches, ClientAborts and
	// ServerAborts are HAProxy's econ, eresp, wretr, wredis, cli_abrt and
	// srv_abrt.
	ConnectErrors  uint64 `json:"connect_errors"`
	ResponseErrors uint64 `json:"response_errors"`
	Retries        uint64 `json:"retries"`
	Redispatches   uint64 `json:"redispatches"`
	ClientAborts   uint64 `json:"client_aborts"`
	ServerAborts   uint64 `json:"server_aborts"`
	// QueueTime, ConnectTime, ResponseTime and TotalTime are the mean
	// times, in seconds, of the sessions that had them (qtime, ctime,
	// rtime, ttime).
	QueueTime    float64 `json:"queue_time"`
	ConnectTime  float64 `json:"connect_time"`
	ResponseTime float64 `json:"response_time"`
	TotalTime    float64 `json:"total_time"`
}

// Backend is one pool of a Report.
type Backend struct {
	// Name is the name the pool was added with (pxname).
	Name string `json:"name"`
	// Status is "UP" when the backend has a pickable server, else "DOWN".
	Status string `json:"status"`
	// Active and Backup are the pickable regular and backup servers (act,
	// bck).
	Active int `json:"active"`
	Backup int `json:"backup"`
	Traffic
	// Servers are the pool's servers, in configuration order, then the
	// removed ones still in use.
	Servers []Server `json:"servers"`
}

// Server is one server of a Backend.
type Server struct {
	// Name and Addr are the server's name and address (svname, addr).
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Status is the state as HAProxy writes it: "UP", "UP, going down",
	// "DOWN", "DOWN, going up", "MAINT", then ", DRAIN" when the server
	// takes no new traffic, ", REMOVED" when it is no longer configured.
	Status string `json:"status"`
	// State is lb.State's name ("up", "going down", "down", "going up",
	// "maintenance").
	State string `json:"state"`
	// Reason is why the server is in its state, empty when none.
	Reason string `json:"reason"`
	// Since is when the state last changed; LastChange the seconds since
	// then (lastchg).
	Since      time.Time `json:"since"`
	LastChange float64   `json:"last_change"`
	// Weight is the effective weight (weight).
	Weight int `json:"weight"`
	// Backup reports a backup server (bck).
	Backup bool `json:"backup"`
	// Draining and Removed report a server that takes no new traffic, and
	// one no longer configured.
	Draining bool `json:"draining"`
	Removed  bool `json:"removed"`
	// MaxConns is the session limit, 0 for none (slim).
	MaxConns int `json:"max_conns"`
	Traffic
	// Check is the last health check, nil before the first.
	Check *Check `json:"check"`
	// CheckFailures counts failed checks (chkfail); Downs the transitions
	// to down (chkdown); Downtime the seconds spent down (downtime).
	CheckFailures uint64  `json:"check_failures"`
	Downs         uint64  `json:"downs"`
	Downtime      float64 `json:"downtime"`
}

// Check is the result of a health check.
type Check struct {
	// Status is HAProxy's check_status (L4OK, L7STS, ...); Code the
	// response code, 0 when none (check_code).
	Status string `json:"status"`
	Code   int    `json:"code"`
	// Passed reports a successful check; Reason describes a failure.
	Passed bool   `json:"passed"`
	Reason string `json:"reason"`
	// Time is when the check started; Age the seconds since then
	// (last_chk); Duration how long it took, in seconds (check_duration).
	Time     time.Time `json:"time"`
	Age      float64   `json:"age"`
	Duration float64   `json:"duration"`
	// Passes and Fails are the consecutive passed and failed checks.
	Passes int `json:"passes"`
	Fails  int `json:"fails"`
}

func responsesOf(r lb.ResponseStats) Responses {
	return Responses{
		Class1xx: r.Class1xx, Class2xx: r.Class2xx, Class3xx: r.Class3xx,
		Class4xx: r.Class4xx, Class5xx: r.Class5xx, Other: r.Other,
	}
}

func frontendOf(f lb.FrontendStats, reqRate float64) Frontend {
	return Frontend{
		Name: f.Name, SessionsCur: f.ConnCur, SessionsMax: f.ConnMax, SessionsTotal: f.ConnTotal,
		ConnRate: f.ConnRate, ConnRateMax: f.ConnRateMax, RequestRate: reqRate, Requests: f.Requests,
		BytesIn: f.BytesIn, BytesOut: f.BytesOut, Denied: f.Denied, Errors: f.Errors,
		ClientAborts: f.ClientAborts, Responses: responsesOf(f.Responses),
	}
}

func trafficOf(t lb.TrafficStats) Traffic {
	return Traffic{
		SessionsCur: t.Cur, SessionsMax: t.Max, SessionsTotal: t.Total, Requests: t.Requests,
		QueueCur: t.QueueCur, QueueMax: t.QueueMax, BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		Responses:     responsesOf(t.Responses),
		ConnectErrors: t.ConnectErrors, ResponseErrors: t.ResponseErrors,
		Retries: t.Retries, Redispatches: t.Redispatches,
		ClientAborts: t.ClientAborts, ServerAborts: t.ServerAborts,
		QueueTime: t.QueueTime.Mean().Seconds(), ConnectTime: t.ConnectTime.Mean().Seconds(),
		ResponseTime: t.ResponseTime.Mean().Seconds(), TotalTime: t.TotalTime.Mean().Seconds(),
	}
}

// backendOf converts a pool's statistics, without the rates.
func backendOf(p lb.PoolStats, now time.Time) Backend {
	b := Backend{
		Name: p.Name, Status: "DOWN", Active: p.Active, Backup: p.Backup,
		Traffic: trafficOf(p.TrafficStats), Servers: make([]Server, len(p.Servers)),
	}
	if p.Up() {
		b.Status = "UP"
	}
	for i, s := range p.Servers {
		b.Servers[i] = serverOf(s, now)
	}
	return b
}

// statusWords are HAProxy's words for each lb.State.
var statusWords = map[lb.State]string{
	lb.StateUp:          "UP",
	lb.StateGoingDown:   "UP, going down",
	lb.StateDown:        "DOWN",
	lb.StateGoingUp:     "DOWN, going up",
	lb.StateMaintenance: "MAINT",
}

func serverOf(s lb.ServerStats, now time.Time) Server {
	status, ok := statusWords[s.State]
	if !ok {
		status = "UNKNOWN"
	}
	if s.Draining {
		status += ", DRAIN"
	}
	if s.Removed {
		status += ", REMOVED"
	}
	out := Server{
		Name: s.Name, Addr: s.Addr, Status: status, State: s.State.String(), Reason: s.Reason,
		Since: s.Since, Weight: s.Weight, Backup: s.Backup, Draining: s.Draining, Removed: s.Removed,
		MaxConns: s.MaxConns, Traffic: trafficOf(s.TrafficStats),
		CheckFailures: s.Health.Failures, Downs: s.Health.Downs, Downtime: s.Health.Downtime.Seconds(),
	}
	if !s.Since.IsZero() {
		out.LastChange = max(now.Sub(s.Since), 0).Seconds()
	}
	if c := s.Health.Last; !c.Time.IsZero() {
		out.Check = &Check{
			Status: c.Status, Code: c.Code, Passed: c.Passed, Reason: c.Reason,
			Time: c.Time, Age: max(now.Sub(c.Time), 0).Seconds(), Duration: c.Duration.Seconds(),
			Passes: s.Health.Passes, Fails: s.Health.Fails,
		}
	}
	return out
}
