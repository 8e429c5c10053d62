// Package statuspage serves the live status page of lbkit's frontends,
// backends and servers, in the spirit of HAProxy's stats page: one table of
// frontends, then one table per backend (a Pool) with a row per server and
// the backend's totals. For every server it shows the state and its reason,
// the time since the last change, the weight, current, maximum and limit of
// sessions, the queue, session and request rates, bytes, HTTP responses by
// class, errors, retries, aborts, mean times, and the last health check
// with its age; for every backend whether it is up or down.
//
// A Handler is an http.Handler. The host registers the sources it wants
// shown by name, as with metrics.Collector; sources may come and go while
// the page is served, and one added under a name already shown replaces it:
//
//	page := &statuspage.Handler{Title: "edge"}
//	page.AddPool("web", webPool)  // a *lb.Pool
//	page.AddFrontend("www", proxy) // a *lb.ReverseProxy or *lb.TCPFrontend
//	mux := http.NewServeMux()
//	mux.Handle("/status", page)
//	// ...
//	page.RemovePool("web") // webPool is no longer shown
//
// The page is meant for operators: mount it on an address that only they
// reach (a loopback or management listener), or behind authentication; it
// names every server and its address.
//
// # Refresh
//
// The page refreshes itself with a meta refresh (Handler.Refresh, 5 s by
// default) and carries no JavaScript at all: it works with scripts disabled,
// and its Content-Security-Policy can forbid every script. A browser keeps
// the scroll position across the reload.
//
// # JSON
//
// The same data is served as JSON when the request has the query parameter
// format=json (GET /status?format=json), as a [Report]. Its field names are
// stable snake_case names close to HAProxy's; durations are in seconds
// (floating point) and times in RFC 3339.
//
// # Rates
//
// Frontends count their connection rate themselves (lb.FrontendStats.ConnRate).
// The other rates (sessions and requests per second of backends and servers,
// requests per second of frontends) are measured by the Handler, as the
// difference of the totals between two renderings at least one second
// apart, divided by the time between them: a page refreshed every few
// seconds shows the rate over its refresh interval; the first rendering
// shows 0.
//
// # Safety
//
// Every value goes through html/template, which escapes it for its context:
// a server named "<script>" shows as text. Responses are sent with
// Content-Type, X-Content-Type-Options: nosniff, Cache-Control: no-store,
// Referrer-Policy: no-referrer and a Content-Security-Policy that allows no
// scripts, no images, no frames and no forms, and only the page's own inline
// stylesheet (by its hash). Only GET and HEAD are served; other methods get
// 405 Method Not Allowed.
package statuspage
