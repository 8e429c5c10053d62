package acl

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

func prefixes(s ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(s))
	for i, p := range s {
		ps[i] = netip.MustParsePrefix(p)
	}
	return ps
}

// req builds a request as an HTTP server hands it to a handler.
type req struct {
	target, host, remote, sni string
	header                    http.Header
}

func (q req) build() *http.Request {
	target := q.target
	if target == "" {
		target = "/"
	}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = "www.example.com"
	if q.host != "" {
		r.Host = q.host
	}
	r.RemoteAddr = "192.0.2.10:40000"
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	for k, vs := range q.header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if q.sni != "" {
		r.TLS = &tls.ConnectionState{ServerName: q.sni}
	}
	return r
}

func TestCheckRequest(t *testing.T) {
	office := Rule{Name: "office", IPs: prefixes("10.0.0.0/8", "2001:db8::/32"), Action: Allow}
	deny := func(r Rule) Rule { r.Action = Deny; return r }
	tests := []struct {
		name  string
		rules []Rule
		req   req
		want  Decision
	}{
		{"no rules allow", nil, req{}, Decision{Rule: -1, Action: Allow}},
		{"no match allows by default", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/public"}, Decision{-1, Allow}},
		{"empty rule matches all", []Rule{deny(Rule{})}, req{}, Decision{0, Deny}},
		{"ipv4 in list", []Rule{office, deny(Rule{})}, req{remote: "10.1.2.3:5"}, Decision{0, Allow}},
		{"ipv4 out of list", []Rule{office, deny(Rule{})}, req{remote: "11.1.2.3:5"}, Decision{1, Deny}},
		{"ipv6 in list", []Rule{office, deny(Rule{})}, req{remote: "[2001:db8::7]:5"}, Decision{0, Allow}},
		{"ipv6 out of list", []Rule{office, deny(Rule{})}, req{remote: "[2001:db9::7]:5"}, Decision{1, Deny}},
		{"ipv4-mapped matches ipv4 prefix", []Rule{office, deny(Rule{})}, req{remote: "[::ffff:10.0.0.1]:5"}, Decision{0, Allow}},
		{"unparsable remote matches no prefix", []Rule{office, deny(Rule{})}, req{remote: "pipe"}, Decision{1, Deny}},
		{"invert ip: outsider denied", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), Invert: true})}, req{remote: "192.0.2.1:1"}, Decision{0, Deny}},
		{"invert ip: insider allowed", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), Invert: true})}, req{remote: "10.9.9.9:1"}, Decision{-1, Allow}},
		{"path prefix", []Rule{deny(Rule{PathPrefix: []string{"/x", "/admin"}})}, req{target: "/admin/users"}, Decision{0, Deny}},
		{"path prefix ignores query", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/public?next=/admin"}, Decision{-1, Allow}},
		{"path prefix decoded", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/%61dmin"}, Decision{0, Deny}},
		{"path prefix cleaned", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/public/../admin"}, Decision{0, Deny}},
		{"path prefix double slash", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "//admin"}, Decision{0, Deny}},
		{"path prefix case-sensitive", []Rule{deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/Admin"}, Decision{-1, Allow}},
		{"path suffix", []Rule{deny(Rule{PathSuffix: []string{".php", ".env"}})}, req{target: "/x/.env?a=b"}, Decision{0, Deny}},
		{"path suffix no match", []Rule{deny(Rule{PathSuffix: []string{".php"}})}, req{target: "/x.php.txt"}, Decision{-1, Allow}},
		{"path regexp", []Rule{deny(Rule{PathRegexp: `^/user/[0-9]+/edit$`})}, req{target: "/user/42/edit"}, Decision{0, Deny}},
		{"path regexp no match", []Rule{deny(Rule{PathRegexp: `^/user/[0-9]+/edit$`})}, req{target: "/user/me/edit"}, Decision{-1, Allow}},
		{"header value", []Rule{deny(Rule{Header: "x-env", HeaderValues: []string{"dev", "test"}})}, req{header: http.Header{"X-Env": {"test"}}}, Decision{0, Deny}},
		{"header name case-insensitive", []Rule{deny(Rule{Header: "X-ENV", HeaderValues: []string{"dev"}})}, req{header: http.Header{"X-Env": {"dev"}}}, Decision{0, Deny}},
		{"header second value", []Rule{deny(Rule{Header: "x-env", HeaderValues: []string{"dev"}})}, req{header: http.Header{"X-Env": {"prod", "dev"}}}, Decision{0, Deny}},
		{"header other value", []Rule{deny(Rule{Header: "x-env", HeaderValues: []string{"dev"}})}, req{header: http.Header{"X-Env": {"Dev"}}}, Decision{-1, Allow}},
		{"header absent", []Rule{deny(Rule{Header: "x-env", HeaderValues: []string{"dev"}})}, req{}, Decision{-1, Allow}},
		{"header presence", []Rule{deny(Rule{Header: "Authorization"})}, req{header: http.Header{"Authorization": {"x"}}}, Decision{0, Deny}},
		{"host exact", []Rule{deny(Rule{Host: []string{"Admin.Example.com"}})}, req{host: "admin.example.COM:8080"}, Decision{0, Deny}},
		{"host exact not subdomain", []Rule{deny(Rule{Host: []string{"example.com"}})}, req{host: "a.example.com"}, Decision{-1, Allow}},
		{"host wildcard", []Rule{deny(Rule{Host: []string{"*.example.com"}})}, req{host: "a.b.example.com"}, Decision{0, Deny}},
		{"host wildcard not apex", []Rule{deny(Rule{Host: []string{"*.example.com"}})}, req{host: "example.com"}, Decision{-1, Allow}},
		{"host wildcard not suffix", []Rule{deny(Rule{Host: []string{"*.example.com"}})}, req{host: "badexample.com"}, Decision{-1, Allow}},
		{"host ipv6", []Rule{deny(Rule{Host: []string{"::1"}})}, req{host: "[::1]:80"}, Decision{0, Deny}},
		{"sni over tls", []Rule{deny(Rule{SNI: []string{"secret.example"}})}, req{sni: "secret.example"}, Decision{0, Deny}},
		{"sni without tls", []Rule{deny(Rule{SNI: []string{"secret.example"}})}, req{}, Decision{-1, Allow}},
		{"ip and path and-ed: both", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/admin"}})}, req{remote: "10.0.0.1:1", target: "/admin"}, Decision{0, Deny}},
		{"ip and path and-ed: ip only", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/admin"}})}, req{remote: "10.0.0.1:1", target: "/"}, Decision{-1, Allow}},
		{"ip and path and-ed: path only", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/admin"}})}, req{remote: "11.0.0.1:1", target: "/admin"}, Decision{-1, Allow}},
		{"invert negates whole rule", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/admin"}, Invert: true})}, req{remote: "10.0.0.1:1", target: "/"}, Decision{0, Deny}},
		{"invert whole rule: both match", []Rule{deny(Rule{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/admin"}, Invert: true})}, req{remote: "10.0.0.1:1", target: "/admin"}, Decision{-1, Allow}},
		{"first match wins: allow before deny", []Rule{{PathPrefix: []string{"/admin/public"}}, deny(Rule{PathPrefix: []string{"/admin"}})}, req{target: "/admin/public/x"}, Decision{0, Allow}},
		{"first match wins: deny before allow", []Rule{deny(Rule{PathPrefix: []string{"/admin"}}), {PathPrefix: []string{"/admin/public"}}}, req{target: "/admin/public/x"}, Decision{0, Deny}},
		{"later rule after non-match", []Rule{deny(Rule{PathPrefix: []string{"/a"}}), deny(Rule{PathPrefix: []string{"/b"}})}, req{target: "/b"}, Decision{1, Deny}},
		{"redirect", []Rule{{Action: RedirectTo, Redirect: Redirect{Scheme: "https"}}}, req{}, Decision{0, RedirectTo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Compile(tt.rules...)
			if err != nil {
				t.Fatal(err)
			}
			got := rs.CheckRequest(tt.req.build())
			if got != tt.want {
				t.Fatalf("CheckRequest = %+v, want %+v", got, tt.want)
			}
			if got.Rule >= 0 && rs.Stats()[got.Rule].Hits != 1 {
				t.Fatalf("rule %d hits = %d, want 1", got.Rule, rs.Stats()[got.Rule].Hits)
			}
		})
	}
}

func TestCheckConn(t *testing.T) {
	tests := []struct {
		name   string
		rules  []Rule
		remote string
		sni    string
		want   Decision
	}{
		{"ip deny", []Rule{{IPs: prefixes("127.0.0.0/8"), Action: Deny}}, "127.0.0.1:1", "", Decision{0, Deny}},
		{"ip allow list", []Rule{{IPs: prefixes("10.0.0.0/8"), Invert: true, Action: Deny}}, "10.0.0.1:1", "", Decision{-1, Allow}},
		{"ipv6", []Rule{{IPs: prefixes("::1/128"), Action: Deny}}, "[::1]:1", "", Decision{0, Deny}},
		{"sni", []Rule{{SNI: []string{"*.internal"}, Action: Deny}}, "127.0.0.1:1", "db.internal", Decision{0, Deny}},
		{"sni absent", []Rule{{SNI: []string{"*.internal"}, Action: Deny}}, "127.0.0.1:1", "", Decision{-1, Allow}},
		{"sni inverted, absent", []Rule{{SNI: []string{"public.example"}, Invert: true, Action: Deny}}, "127.0.0.1:1", "", Decision{0, Deny}},
		{"ip and sni and-ed", []Rule{{IPs: prefixes("10.0.0.0/8"), SNI: []string{"db.internal"}, Action: Deny}}, "127.0.0.1:1", "db.internal", Decision{-1, Allow}},
		{"http rules skipped", []Rule{{PathPrefix: []string{"/"}, Action: Deny}, {IPs: prefixes("127.0.0.0/8"), Action: Deny}}, "127.0.0.1:1", "", Decision{1, Deny}},
		{"inverted http rule skipped", []Rule{{PathPrefix: []string{"/x"}, Invert: true, Action: Deny}}, "127.0.0.1:1", "", Decision{-1, Allow}},
		{"redirect skipped", []Rule{{Action: RedirectTo, Redirect: Redirect{Scheme: "https"}}, {Action: Deny}}, "127.0.0.1:1", "", Decision{1, Deny}},
		{"allow then deny", []Rule{{IPs: prefixes("127.0.0.1/32")}, {Action: Deny}}, "127.0.0.1:1", "", Decision{0, Allow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := MustCompile(tt.rules...)
			info := lb.ConnInfo{Remote: netip.MustParseAddrPort(tt.remote), SNI: tt.sni}
			if got := rs.CheckConn(&info); got != tt.want {
				t.Fatalf("CheckConn = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		name    string
		rules   []Rule
		addr    string
		want    Decision
		decided bool
	}{
		{"no rules", nil, "10.0.0.1", Decision{-1, Allow}, true},
		{"ip deny", []Rule{{IPs: prefixes("10.0.0.0/8"), Action: Deny}}, "10.0.0.1", Decision{0, Deny}, true},
		{"ip allow", []Rule{{IPs: prefixes("10.0.0.0/8")}, {Action: Deny}}, "10.0.0.1", Decision{0, Allow}, true},
		{"ip fallthrough to catch-all", []Rule{{IPs: prefixes("10.0.0.0/8")}, {Action: Deny}}, "11.0.0.1", Decision{1, Deny}, true},
		{"path rule undecidable", []Rule{{PathPrefix: []string{"/public"}}, {Action: Deny}}, "11.0.0.1", Decision{-1, Allow}, false},
		{"ip part excludes path rule", []Rule{{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/p"}}, {Action: Deny}}, "11.0.0.1", Decision{1, Deny}, true},
		{"ip part of inverted rule decides", []Rule{{IPs: prefixes("10.0.0.0/8"), PathPrefix: []string{"/p"}, Invert: true, Action: Deny}}, "11.0.0.1", Decision{0, Deny}, true},
		{"sni rule undecidable", []Rule{{SNI: []string{"a.example"}}, {Action: Deny}}, "11.0.0.1", Decision{-1, Allow}, false},
		{"redirect left to http", []Rule{{Action: RedirectTo, Redirect: Redirect{Scheme: "https"}}, {Action: Deny}}, "11.0.0.1", Decision{-1, Allow}, false},
		{"mapped address", []Rule{{IPs: prefixes("10.0.0.0/8"), Action: Deny}}, "::ffff:10.0.0.1", Decision{0, Deny}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := MustCompile(tt.rules...)
			got, ok := rs.CheckAddr(netip.MustParseAddr(tt.addr))
			if got != tt.want || ok != tt.decided {
				t.Fatalf("CheckAddr = %+v, %v; want %+v, %v", got, ok, tt.want, tt.decided)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
	}{
		{"invalid prefix", Rule{IPs: []netip.Prefix{{}}}},
		{"empty path prefix", Rule{PathPrefix: []string{""}}},
		{"empty path suffix", Rule{PathSuffix: []string{""}}},
		{"bad regexp", Rule{PathRegexp: "("}},
		{"bad header name", Rule{Header: "X Env"}},
		{"values without header", Rule{HeaderValues: []string{"a"}}},
		{"bad host", Rule{Host: []string{"a/b"}}},
		{"empty host", Rule{Host: []string{""}}},
		{"bad sni", Rule{SNI: []string{"*.*.x"}}},
		{"unknown action", Rule{Action: 9}},
		{"redirect fields on deny", Rule{Action: Deny, Redirect: Redirect{Scheme: "https"}}},
		{"redirect without target", Rule{Action: RedirectTo}},
		{"redirect both targets", Rule{Action: RedirectTo, Redirect: Redirect{Scheme: "https", Location: "/x"}}},
		{"redirect bad scheme", Rule{Action: RedirectTo, Redirect: Redirect{Scheme: "javascript"}}},
		{"redirect bad code", Rule{Action: RedirectTo, Redirect: Redirect{Scheme: "https", Code: 200}}},
		{"redirect unknown placeholder", Rule{Action: RedirectTo, Redirect: Redirect{Location: "https://x{{port}}"}}},
		{"redirect unclosed placeholder", Rule{Action: RedirectTo, Redirect: Redirect{Location: "https://x{{path"}}},
		{"redirect space", Rule{Action: RedirectTo, Redirect: Redirect{Location: "https://x/a b"}}},
		{"redirect crlf", Rule{Action: RedirectTo, Redirect: Redirect{Location: "https://x/\r\nSet-Cookie: a=b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(Rule{Name: "ok"}, tt.rule)
			if !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("Compile = %v, want ErrInvalidRule", err)
			}
		})
	}
}

func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name     string
		redirect Redirect
		req      req
		want     string
		code     int
		err      error
	}{
		{"scheme https", Redirect{Scheme: "https"}, req{target: "/a/b?x=1&y=2", host: "www.example.com:8080"}, "https://www.example.com/a/b?x=1&y=2", 302, nil},
		{"scheme no query", Redirect{Scheme: "https", Code: 301}, req{target: "/a", host: "Example.COM"}, "https://example.com/a", 301, nil},
		{"template", Redirect{Location: "https://{{host}}:8443{{path}}{{query}}", Code: 308}, req{target: "/p?q", host: "h.example"}, "https://h.example:8443/p?q", 308, nil},
		{"scheme placeholder plain", Redirect{Location: "{{scheme}}://new.example{{path}}", Code: 303}, req{target: "/p"}, "http://new.example/p", 303, nil},
		{"scheme placeholder tls", Redirect{Location: "{{scheme}}://new.example{{path}}", Code: 307}, req{target: "/p", sni: "x"}, "https://new.example/p", 307, nil},
		{"fixed target", Redirect{Location: "https://maintenance.example/"}, req{target: "/anything"}, "https://maintenance.example/", 302, nil},
		{"path double slash cannot escape", Redirect{Location: "{{path}}"}, req{target: "//evil.example/x"}, "/evil.example/x", 302, nil},
		{"path encoded", Redirect{Location: "https://a.example{{path}}"}, req{target: "/a%20b/%0d%0a"}, "https://a.example/a%20b/%0d%0a", 302, nil},
		{"ipv6 host", Redirect{Scheme: "https"}, req{target: "/", host: "[2001:db8::1]:80"}, "https://[2001:db8::1]/", 302, nil},
		{"bad host", Redirect{Scheme: "https"}, req{target: "/", host: "evil.example/x"}, "", 0, ErrBadHost},
		{"host with userinfo", Redirect{Scheme: "https"}, req{target: "/", host: "a@evil.example"}, "", 0, ErrBadHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := MustCompile(Rule{Action: RedirectTo, Redirect: tt.redirect})
			c := &rs.rules[0]
			got, err := c.redirect.expand(tt.req.build())
			if !errors.Is(err, tt.err) {
				t.Fatalf("expand error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got != tt.want || c.code != tt.code {
				t.Fatalf("expand = %q (%d), want %q (%d)", got, c.code, tt.want, tt.code)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"":            "/",
		"/":           "/",
		"/a/b":        "/a/b",
		"/a/b/":       "/a/b/",
		"//a":         "/a",
		"/a/./b":      "/a/b",
		"/a/../b":     "/b",
		"/../a":       "/a",
		"/a/..":       "/",
		"/a/.":        "/a",
		"a/b":         "/a/b",
		"/a//b/":      "/a/b/",
		"/a/.hidden":  "/a/.hidden",
		"/a/..b/..c/": "/a/..b/..c/",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	rs := MustCompile(
		Rule{IPs: prefixes("10.0.0.0/8", "2001:db8::/32"), PathPrefix: []string{"/private"}, Action: Deny},
		Rule{PathSuffix: []string{".php", ".env"}, Action: Deny},
		Rule{Header: "X-Env", HeaderValues: []string{"dev", "test"}, Action: Deny},
		Rule{Host: []string{"*.internal.example", "admin.example"}, Action: Deny},
		Rule{SNI: []string{"*.internal.example"}, Action: Deny},
		Rule{IPs: prefixes("192.0.2.0/24"), Invert: true, Action: Deny},
	)
	r := req{target: "/public/page?x=1", host: "WWW.example.com:443", remote: "192.0.2.10:4000",
		header: http.Header{"X-Env": {"prod"}}, sni: "www.example.com"}.build()
	if n := testing.AllocsPerRun(1000, func() {
		if d := rs.CheckRequest(r); d.Rule != -1 {
			t.Fatalf("CheckRequest = %+v", d)
		}
	}); n != 0 {
		t.Errorf("CheckRequest allocs = %v, want 0", n)
	}
	info := lb.ConnInfo{Remote: netip.MustParseAddrPort("[::ffff:192.0.2.10]:4000"), SNI: "www.example.com"}
	if n := testing.AllocsPerRun(1000, func() {
		if d := rs.CheckConn(&info); d.Rule != -1 {
			t.Fatalf("CheckConn = %+v", d)
		}
	}); n != 0 {
		t.Errorf("CheckConn allocs = %v, want 0", n)
	}
	addr := netip.MustParseAddr("10.1.1.1")
	if n := testing.AllocsPerRun(1000, func() { rs.CheckAddr(addr) }); n != 0 {
		t.Errorf("CheckAddr allocs = %v, want 0", n)
	}
}

func BenchmarkCheckRequest(b *testing.B) {
	rs := MustCompile(
		Rule{IPs: prefixes("10.0.0.0/8", "2001:db8::/32"), PathPrefix: []string{"/private"}, Action: Deny},
		Rule{PathSuffix: []string{".php", ".env"}, Action: Deny},
		Rule{Header: "X-Env", HeaderValues: []string{"dev", "test"}, Action: Deny},
		Rule{Host: []string{"*.internal.example", "admin.example"}, Action: Deny},
		Rule{IPs: prefixes("192.0.2.0/24"), Invert: true, Action: Deny},
	)
	r := req{target: "/public/page?x=1", host: "www.example.com", remote: "192.0.2.10:4000",
		header: http.Header{"X-Env": {"prod"}}}.build()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rs.CheckRequest(r)
		}
	})
}

func TestZonedClientAddress(t *testing.T) {
	rs := MustCompile(Rule{IPs: prefixes("fe80::/10"), Action: Deny})
	r := req{remote: "[fe80::1%eth0]:80"}.build()
	if d := rs.CheckRequest(r); d.Action != Deny {
		t.Fatalf("zoned link-local address: %+v, want deny", d)
	}
}

func TestNilRulesAllow(t *testing.T) {
	var rs *Rules
	if d := rs.CheckRequest(req{}.build()); d != (Decision{-1, Allow}) {
		t.Fatalf("nil CheckRequest = %+v", d)
	}
	if d, ok := rs.CheckAddr(netip.MustParseAddr("10.0.0.1")); !ok || d.Action != Allow {
		t.Fatalf("nil CheckAddr = %+v %v", d, ok)
	}
	if rs.Len() != 0 || rs.Stats() != nil || rs.Rejected() != 0 {
		t.Fatal("nil Rules has state")
	}
	var zero Rules
	if d := zero.CheckConn(&lb.ConnInfo{}); d != (Decision{-1, Allow}) {
		t.Fatalf("zero CheckConn = %+v", d)
	}
}
