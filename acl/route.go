package acl

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/lbkit/lbkit/lb"
)

// ErrInvalidRoute reports a route that NewRouter rejects.
var ErrInvalidRoute = errors.New("acl: invalid route")

// Route sends the HTTP requests it matches to a Pool. A route matches when
// its Host patterns (if any) match the request's Host header and its path
// prefix (if any) begins the request's path.
type Route struct {
	// Host lists host name patterns, matched against the Host header
	// without its port, case-insensitively: "example.com" exactly,
	// "*.example.com" any name below example.com. List both for a domain
	// and its subdomains. Empty matches any host.
	Host []string
	// PathPrefix, when not empty, must begin the request's path (decoded
	// and cleaned, without the query). It is a plain string prefix: "/api"
	// also matches "/apis"; write "/api/" for the subtree only.
	PathPrefix string
	// Pool serves the requests the route matches.
	Pool *lb.Pool
}

// Router chooses the Pool of each HTTP request by its Host header and path:
// the first route that matches, in order, wins (so list specific routes
// before general ones), and requests that match none go to Default. It
// decides on every request, never on the connection or its SNI, so an
// HTTP/2 client that sends requests for several hosts over one connection
// reaches the right Pool each time.
//
// Plug it into lb.ReverseProxy.Route. A Router is immutable and safe for
// concurrent use; Route does not allocate for clean paths. For TCP
// routes by SNI, use lb.Mux.
type Router struct {
	// Default serves requests no route matches; nil makes Route return nil,
	// which lb.ReverseProxy takes as its own Pool.
	Default *lb.Pool

	routes []route
}

type route struct {
	hosts  []hostPattern
	prefix string
	pool   *lb.Pool
}

// NewRouter validates routes and returns a Router over them with the
// default Pool def.
func NewRouter(def *lb.Pool, routes ...Route) (*Router, error) {
	rt := &Router{Default: def}
	for i, r := range routes {
		if r.Pool == nil {
			return nil, fmt.Errorf("%w %d: nil Pool", ErrInvalidRoute, i)
		}
		hosts, err := hostPatterns(r.Host)
		if err != nil {
			return nil, fmt.Errorf("%w %d: %w", ErrInvalidRoute, i, err)
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			return nil, fmt.Errorf("%w %d: path prefix %q does not start with /", ErrInvalidRoute, i, r.PathPrefix)
		}
		rt.routes = append(rt.routes, route{hosts: hosts, prefix: r.PathPrefix, pool: r.Pool})
	}
	return rt, nil
}

// Route returns the Pool for r: that of the first matching route, or
// Default.
func (rt *Router) Route(r *http.Request) *lb.Pool {
	if len(rt.routes) == 0 {
		return rt.Default
	}
	host := hostName(r.Host)
	var p string
	for i := range rt.routes {
		rr := &rt.routes[i]
		if len(rr.hosts) > 0 && !matchHosts(rr.hosts, host) {
			continue
		}
		if rr.prefix != "" {
			if p == "" {
				p = cleanPath(r.URL.Path)
			}
			if !strings.HasPrefix(p, rr.prefix) {
				continue
			}
		}
		return rr.pool
	}
	return rt.Default
}
