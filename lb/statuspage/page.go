package statuspage

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// page is the data of the HTML template.
type page struct {
	Report
	Title   string
	Refresh int // seconds, 0 for none
}

// stylesheet is the page's only inline content; the Content-Security-Policy
// allows it by its hash, so it must be the exact text of the style element.
const stylesheet = `
body{font:12px/1.35 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:12px;color:#111;background:#fff}
h1{font-size:16px;margin:0 0 4px}
h2{font-size:13px;margin:14px 0 3px}
p.meta{margin:0 0 8px;color:#555}
table{border-collapse:collapse;margin-bottom:6px}
th,td{border:1px solid #bbb;padding:1px 5px;white-space:nowrap}
th{background:#d9dfe8;font-weight:600}
td{text-align:right;font-variant-numeric:tabular-nums}
td.l{text-align:left}
tr.total td{background:#e8e8e8;font-weight:600}
tr.up td{background:#c8f0c8}
tr.goingdown td{background:#f0f0a0}
tr.down td{background:#f4b4b4}
tr.goingup td{background:#f6d6a0}
tr.maint td{background:#b8c8f8}
tr.drain td{background:#9ec4ee}
tr.removed td{background:#ddd;color:#555}
h2 span.up{color:#0a6a0a;font-weight:600}
h2 span.down{color:#b00;font-weight:600}
.empty{color:#777}
p.legend span{display:inline-block;border:1px solid #bbb;padding:0 5px;margin-right:3px}
p.legend .up{background:#c8f0c8}
p.legend .goingdown{background:#f0f0a0}
p.legend .down{background:#f4b4b4}
p.legend .goingup{background:#f6d6a0}
p.legend .maint{background:#b8c8f8}
p.legend .drain{background:#9ec4ee}
p.legend .removed{background:#ddd}
`

const pageSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{- if .Refresh}}
<meta http-equiv="refresh" content="{{.Refresh}}">
{{- end}}
<title>lbkit status{{if .Title}}: {{.Title}}{{end}}</title>
<style>` + stylesheet + `</style>
</head>
<body>
<h1>lbkit status{{if .Title}}: {{.Title}}{{end}}</h1>
<p class="meta">{{.Time.UTC.Format "2006-01-02 15:04:05 UTC"}}
{{- if .Refresh}} · refreshes every {{.Refresh}} s{{else}} · no automatic refresh{{end}}
· <a href="?format=json">JSON</a></p>

<h2>Frontends</h2>
{{- if .Frontends}}
<table>
<thead>
<tr><th rowspan="2">Frontend</th><th colspan="3">Sessions</th><th colspan="2">Conn rate</th><th colspan="2">Requests</th><th colspan="2">Bytes</th><th rowspan="2">Denied</th><th rowspan="2">Errors</th><th rowspan="2">Cli abrt</th><th colspan="6">Responses</th></tr>
<tr><th>Cur</th><th>Max</th><th>Total</th><th>Cur</th><th>Max</th><th>Rate</th><th>Total</th><th>In</th><th>Out</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>Other</th></tr>
</thead>
<tbody>
{{- range .Frontends}}
<tr><td class="l">{{.Name}}</td><td>{{.SessionsCur}}</td><td>{{.SessionsMax}}</td><td>{{.SessionsTotal}}</td><td>{{.ConnRate}}</td><td>{{.ConnRateMax}}</td><td>{{rate .RequestRate}}</td><td>{{.Requests}}</td><td>{{bytes .BytesIn}}</td><td>{{bytes .BytesOut}}</td><td>{{.Denied}}</td><td>{{.Errors}}</td><td>{{.ClientAborts}}</td>{{template "responses" .Responses}}</tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="empty">No frontend.</p>
{{- end}}

{{- range .Backends}}
<h2>Backend {{.Name}}: <span class="{{if eq .Status "UP"}}up{{else}}down{{end}}">{{.Status}}</span>, {{.Active}} active, {{.Backup}} backup</h2>
<table>
<thead>
<tr><th rowspan="2">Server</th><th rowspan="2">Address</th><th colspan="3">Status</th><th rowspan="2">Wght</th><th rowspan="2">Act/Bck</th><th colspan="2">Queue</th><th colspan="4">Sessions</th><th colspan="2">Rate /s</th><th rowspan="2">Requests</th><th colspan="2">Bytes</th><th colspan="6">Responses</th><th colspan="2">Errors</th><th colspan="2">Warnings</th><th colspan="2">Aborts</th><th colspan="4">Mean time</th><th colspan="4">Last check</th><th colspan="3">Checks</th></tr>
<tr><th>State</th><th>Reason</th><th>Since</th><th>Cur</th><th>Max</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>Sess</th><th>Req</th><th>In</th><th>Out</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>Other</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th><th>Cli</th><th>Srv</th><th>Queue</th><th>Conn</th><th>Resp</th><th>Total</th><th>Result</th><th>Reason</th><th>Took</th><th>Age</th><th>Fail</th><th>Down</th><th>Downtime</th></tr>
</thead>
<tbody>
{{- range .Servers}}
<tr class="{{rowClass .}}"><td class="l">{{.Name}}</td><td class="l">{{.Addr}}</td><td class="l">{{.Status}}</td><td class="l">{{.Reason}}</td><td>{{if not .Since.IsZero}}{{age .LastChange}}{{end}}</td><td>{{.Weight}}</td><td>{{if .Backup}}B{{else}}A{{end}}</td>
{{- template "traffic" .Traffic | withLimit .MaxConns}}
{{- with .Check}}<td class="l">{{.Status}}{{if .Code}} {{.Code}}{{end}}</td><td class="l">{{.Reason}}</td><td>{{dur .Duration}}</td><td>{{age .Age}}</td>{{else}}<td class="l">-</td><td></td><td></td><td></td>{{end}}<td>{{.CheckFailures}}</td><td>{{.Downs}}</td><td>{{age .Downtime}}</td></tr>
{{- else}}
<tr><td class="l empty" colspan="41">No server.</td></tr>
{{- end}}
<tr class="total"><td class="l">Backend</td><td></td><td class="l">{{.Status}}</td><td></td><td></td><td></td><td>{{.Active}}/{{.Backup}}</td>
{{- template "traffic" .Traffic | withLimit 0}}<td></td><td></td><td></td><td></td><td></td><td></td><td></td></tr>
</tbody>
</table>
{{- else}}
<h2>Backends</h2>
<p class="empty">No backend.</p>
{{- end}}
<p class="legend"><span class="up">UP</span><span class="goingdown">UP, going down</span><span class="down">DOWN</span><span class="goingup">DOWN, going up</span><span class="maint">MAINT</span><span class="drain">DRAIN</span><span class="removed">REMOVED</span>
Rates are per second over the last refresh; times are means; "Since" is the time since the last change of state.</p>
</body>
</html>
{{define "responses"}}<td>{{.Class1xx}}</td><td>{{.Class2xx}}</td><td>{{.Class3xx}}</td><td>{{.Class4xx}}</td><td>{{.Class5xx}}</td><td>{{.Other}}</td>{{end}}
{{- define "traffic"}}{{with .T}}<td>{{.QueueCur}}</td><td>{{.QueueMax}}</td><td>{{.SessionsCur}}</td><td>{{.SessionsMax}}</td>{{end}}<td>{{if .Limit}}{{.Limit}}{{end}}</td>{{with .T}}<td>{{.SessionsTotal}}</td><td>{{rate .SessionRate}}</td><td>{{rate .RequestRate}}</td><td>{{.Requests}}</td><td>{{bytes .BytesIn}}</td><td>{{bytes .BytesOut}}</td>{{template "responses" .Responses}}<td>{{.ConnectErrors}}</td><td>{{.ResponseErrors}}</td><td>{{.Retries}}</td><td>{{.Redispatches}}</td><td>{{.ClientAborts}}</td><td>{{.ServerAborts}}</td><td>{{dur .QueueTime}}</td><td>{{dur .ConnectTime}}</td><td>{{dur .ResponseTime}}</td><td>{{dur .TotalTime}}</td>{{end}}{{end}}
`

// trafficRow is the data of the "traffic" template: the counters and the
// session limit of a server (0 for a backend).
type trafficRow struct {
	T     Traffic
	Limit int
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes":     formatBytes,
	"dur":       formatDuration,
	"age":       formatAge,
	"rate":      formatRate,
	"rowClass":  rowClass,
	"withLimit": func(limit int, t Traffic) trafficRow { return trafficRow{T: t, Limit: limit} },
}).Parse(pageSource))

// rowClass is the CSS class of a server's row, after its state.
func rowClass(s Server) string {
	switch {
	case s.Removed:
		return "removed"
	case s.State == "maintenance":
		return "maint"
	case s.Draining:
		return "drain"
	}
	return strings.ReplaceAll(s.State, " ", "")
}

// formatBytes writes n bytes with a binary unit: 512 B, 1.5 KiB, 3.2 MiB.
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	return "" // not reached
}

// formatDuration writes a duration in seconds with a unit that fits it:
// 0, 850µs, 12.3ms, 1.25s.
func formatDuration(sec float64) string {
	switch {
	case sec <= 0:
		return "0"
	case sec < 1e-3:
		return fmt.Sprintf("%.0fµs", sec*1e6)
	case sec < 1:
		return fmt.Sprintf("%.1fms", sec*1e3)
	}
	return fmt.Sprintf("%.2fs", sec)
}

// formatAge writes a time span in seconds as HAProxy's page does: 7s,
// 3m12s, 2h05m, 4d03h.
func formatAge(sec float64) string {
	d := time.Duration(math.Round(max(sec, 0))) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dd%02dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

// formatRate writes a rate per second with one decimal, or as a whole number
// from 100 on.
func formatRate(r float64) string {
	if r >= 100 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}
