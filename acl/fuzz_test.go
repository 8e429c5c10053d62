package acl

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// checkLocation fails unless loc is safe to send as a Location header.
func checkLocation(t *testing.T, loc string) *url.URL {
	t.Helper()
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' {
			t.Fatalf("location %q has byte %q at %d", loc, c, i)
		}
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("location %q does not parse: %v", loc, err)
	}
	if u.User != nil || u.Fragment != "" {
		t.Fatalf("location %q has userinfo or fragment", loc)
	}
	return u
}

func FuzzRedirect(f *testing.F) {
	f.Add("www.example.com", "/a/b", "x=1", false)
	f.Add("www.example.com:8080", "//evil.example/x", "", true)
	f.Add("evil.example\r\nSet-Cookie: a=b", "/\r\nX: y", "a\r\nb#frag", false)
	f.Add("[2001:db8::1]:443", "/\\evil.example", "q=%zz", true)
	f.Add("a@evil.example", "/%2F%2Fevil", "@", false)
	f.Add("EXAMPLE.com.", "", "?", false)
	fixed := MustCompile(Rule{Action: RedirectTo, Redirect: Redirect{Location: "https://fixed.example/base{{path}}{{query}}"}})
	anyHost := MustCompile(Rule{Action: RedirectTo, Redirect: Redirect{Scheme: "https"}})
	local := MustCompile(Rule{Action: RedirectTo, Redirect: Redirect{Location: "{{path}}{{query}}"}})
	schemed := MustCompile(Rule{Action: RedirectTo, Redirect: Redirect{Location: "{{scheme}}://{{host}}:8443/x{{path}}"}})
	f.Fuzz(func(t *testing.T, host, path, query string, overTLS bool) {
		r := &http.Request{Host: host, URL: &url.URL{Path: path, RawQuery: query}}
		if overTLS {
			r.TLS = &tls.ConnectionState{}
		}

		loc, err := fixed.rules[0].redirect.expand(r)
		if err != nil {
			t.Fatalf("fixed template failed: %v", err)
		}
		u := checkLocation(t, loc)
		if u.Scheme != "https" || u.Host != "fixed.example" || !strings.HasPrefix(loc, "https://fixed.example/base/") {
			t.Fatalf("fixed template escaped: %q", loc)
		}

		loc, err = local.rules[0].redirect.expand(r)
		if err != nil {
			t.Fatalf("local template failed: %v", err)
		}
		u = checkLocation(t, loc)
		if u.Scheme != "" || u.Host != "" || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
			t.Fatalf("local template left the site: %q", loc)
		}

		for _, rs := range []*Rules{anyHost, schemed} {
			loc, err = rs.rules[0].redirect.expand(r)
			if err != nil {
				if !errors.Is(err, ErrBadHost) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			u = checkLocation(t, loc)
			want := strings.ToLower(strings.TrimSuffix(hostName(host), "."))
			if got := strings.ToLower(u.Hostname()); got != strings.Trim(want, "[]") && "["+got+"]" != want {
				// IP literals are normalised; compare parsed forms.
				if !sameIP(got, want) {
					t.Fatalf("host %q became %q in %q", host, u.Hostname(), loc)
				}
			}
			if rs == schemed && u.Port() != "8443" {
				t.Fatalf("port changed: %q", loc)
			}
		}
	})
}

func FuzzPathMatch(f *testing.F) {
	f.Add("/admin/x", "/admin", ".php")
	f.Add("/x/../admin", "/admin", "min")
	f.Add("//admin/./", "/admin/", "/")
	f.Add("admin", "/adm", "n")
	f.Add("/a/..b/.../c", "/a/.", "c")
	f.Fuzz(func(t *testing.T, p, prefix, suffix string) {
		c := cleanPath(p)
		if !strings.HasPrefix(c, "/") || cleanPath(c) != c || !isClean(c) {
			t.Fatalf("cleanPath(%q) = %q, not clean", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("cleanPath(%q) = %q keeps %q", p, c, seg)
			}
		}
		if prefix == "" || suffix == "" {
			return
		}
		rs := MustCompile(
			Rule{PathPrefix: []string{prefix}, Action: Deny},
			Rule{PathSuffix: []string{suffix}, Action: RedirectTo, Redirect: Redirect{Location: "/"}},
		)
		r := &http.Request{Host: "h", URL: &url.URL{Path: p}, Header: http.Header{}}
		d := rs.CheckRequest(r)
		switch {
		case strings.HasPrefix(c, prefix):
			if d.Rule != 0 {
				t.Fatalf("%q (%q) prefix %q: %+v", p, c, prefix, d)
			}
		case strings.HasSuffix(c, suffix):
			if d.Rule != 1 {
				t.Fatalf("%q (%q) suffix %q: %+v", p, c, suffix, d)
			}
		default:
			if d.Rule != -1 {
				t.Fatalf("%q (%q): %+v, want no match", p, c, d)
			}
		}
	})
}

func FuzzHeaderMatch(f *testing.F) {
	f.Add("x-env", "dev", "dev", "Dev")
	f.Add("Content-Type", "text/html; charset=utf-8", "text/html", "")
	f.Add("x_weird", "", "", "a")
	f.Fuzz(func(t *testing.T, name, got, want1, want2 string) {
		if name == "" || !validHeaderName(name) {
			if _, err := Compile(Rule{Header: name, HeaderValues: []string{want1}}); name != "" && err == nil {
				t.Fatalf("header name %q accepted", name)
			}
			return
		}
		rs := MustCompile(Rule{Header: strings.ToUpper(name), HeaderValues: []string{want1, want2}, Action: Deny})
		h := http.Header{}
		h.Add(strings.ToLower(name), got)
		r := &http.Request{Host: "h", URL: &url.URL{Path: "/"}, Header: h}
		match := rs.CheckRequest(r).Action == Deny
		if match != (got == want1 || got == want2) {
			t.Fatalf("header %q: %q vs %q|%q matched=%v", name, got, want1, want2, match)
		}
	})
}

func FuzzHostMatch(f *testing.F) {
	f.Add("*.example.com", "A.Example.COM.")
	f.Add("example.com", "example.com:80")
	f.Add("*.b.c", "b.c")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		p, err := parseHostPattern(pattern)
		if err != nil {
			return
		}
		name := strings.ToLower(strings.TrimSuffix(host, "."))
		var want bool
		if p.wild {
			want = strings.HasSuffix(name, "."+p.name) && len(name) > len(p.name)+1
		} else {
			want = name == p.name && name != ""
		}
		if got := matchHosts([]hostPattern{p}, host); got != want {
			t.Fatalf("pattern %q host %q: %v, want %v", pattern, host, got, want)
		}
	})
}

func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(strings.Trim(a, "[]"))
	y, err2 := netip.ParseAddr(strings.Trim(b, "[]"))
	return err1 == nil && err2 == nil && x == y
}
