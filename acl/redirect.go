package acl

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/lbkit/lbkit/internal/hostname"
)

// Redirect is the answer of a RedirectTo rule: either a Location template,
// or a change of scheme that keeps the host, path and query.
//
// Location may hold these placeholders, replaced per request:
//
//	{{host}}    the host name of the Host header, without its port; IPv6
//	            addresses in brackets. A Host that is not a valid host name
//	            or IP address makes the request fail with 400 instead.
//	{{path}}    the request path, percent-encoded, always starting with a
//	            single "/" (so that it can never become "//other.host").
//	{{query}}   "?" and the raw query when the request has one, else "".
//	{{scheme}}  "https" when the request came over TLS, else "http".
//
// Substituted values are percent-encoded where needed: they never carry
// control characters, spaces, backslashes or a fragment, so they cannot
// inject headers nor move the target to another host than the template
// names. The template's literal text must itself be printable ASCII without
// spaces or backslashes.
type Redirect struct {
	// Code is the status: 301, 302, 303, 307 or 308; zero means 302.
	Code int
	// Location is the target template. Exactly one of Location and Scheme
	// must be set.
	Location string
	// Scheme, when set, redirects to the same host (without its port, that
	// is, to the new scheme's default port), path and query over this
	// scheme: "https" or "http". For another port, use Location:
	// "https://{{host}}:8443{{path}}{{query}}".
	Scheme string
}

type placeholder uint8

const (
	literal placeholder = iota
	phHost
	phPath
	phQuery
	phScheme
)

var placeholders = map[string]placeholder{
	"host": phHost, "path": phPath, "query": phQuery, "scheme": phScheme,
}

type part struct {
	ph  placeholder
	lit string
}

// template is a compiled Location.
type template struct {
	parts []part
	size  int // literal bytes
}

func (r Redirect) compile() (*template, int, error) {
	code := r.Code
	switch code {
	case 0:
		code = http.StatusFound
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil, 0, fmt.Errorf("redirect code %d (want 301, 302, 303, 307 or 308)", code)
	}
	switch {
	case r.Location != "" && r.Scheme != "":
		return nil, 0, errors.New("redirect with both Location and Scheme")
	case r.Scheme != "":
		if r.Scheme != "http" && r.Scheme != "https" {
			return nil, 0, fmt.Errorf("redirect scheme %q (want http or https)", r.Scheme)
		}
		t, err := parseTemplate(r.Scheme + "://{{host}}{{path}}{{query}}")
		return t, code, err
	case r.Location != "":
		t, err := parseTemplate(r.Location)
		return t, code, err
	}
	return nil, 0, errors.New("redirect without Location or Scheme")
}

// parseTemplate splits a Location template into literals and placeholders.
func parseTemplate(s string) (*template, error) {
	t := &template{}
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			i = len(s)
		}
		if i > 0 {
			lit := s[:i]
			for j := 0; j < len(lit); j++ {
				if b := lit[j]; b <= ' ' || b >= 0x7f || b == '\\' || b == '{' || b == '}' {
					return nil, fmt.Errorf("redirect location: byte %q not allowed", b)
				}
			}
			t.parts = append(t.parts, part{lit: lit})
			t.size += len(lit)
			s = s[i:]
			continue
		}
		end := strings.Index(s, "}}")
		if end < 0 {
			return nil, errors.New("redirect location: unclosed {{")
		}
		ph, ok := placeholders[s[2:end]]
		if !ok {
			return nil, fmt.Errorf("redirect location: unknown placeholder %q", s[:end+2])
		}
		t.parts = append(t.parts, part{ph: ph})
		s = s[end+2:]
	}
	return t, nil
}

// expand returns the Location for r, or ErrBadHost.
func (t *template) expand(r *http.Request) (string, error) {
	var b strings.Builder
	b.Grow(t.size + len(r.Host) + len(r.URL.Path) + len(r.URL.RawQuery) + 16)
	for _, p := range t.parts {
		switch p.ph {
		case literal:
			b.WriteString(p.lit)
		case phHost:
			h, err := redirectHost(r.Host)
			if err != nil {
				return "", err
			}
			b.WriteString(h)
		case phPath:
			writePath(&b, r.URL.EscapedPath())
		case phQuery:
			if r.URL.RawQuery != "" {
				b.WriteByte('?')
				writeEscaped(&b, r.URL.RawQuery, true)
			}
		case phScheme:
			if r.TLS != nil {
				b.WriteString("https")
			} else {
				b.WriteString("http")
			}
		}
	}
	return b.String(), nil
}

// redirectHost validates the host of a Host header for a redirect target.
func redirectHost(hostport string) (string, error) {
	h := strings.TrimSuffix(hostName(hostport), ".")
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%w: %q", ErrBadHost, hostport)
		}
		if a.Is6() {
			return "[" + a.String() + "]", nil
		}
		return a.String(), nil
	}
	if !hostname.Valid(h) {
		return "", fmt.Errorf("%w: %q", ErrBadHost, hostport)
	}
	return strings.ToLower(h), nil
}

// writePath writes an escaped path with exactly one leading slash.
func writePath(b *strings.Builder, p string) {
	p = strings.TrimLeft(p, "/\\")
	b.WriteByte('/')
	writeEscaped(b, p, false)
}

const hexDigits = "0123456789ABCDEF"

// writeEscaped percent-encodes every byte of s outside the characters a
// path (or, with query, a query) may carry unencoded. Existing valid
// escapes are kept.
func writeEscaped(b *strings.Builder, s string, query bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(c)
			continue
		}
		if c != '%' && (allowedURLByte(c) || query && c == '?') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// allowedURLByte reports whether c may appear unencoded in a path segment:
// unreserved characters, sub-delimiters, ':', '@' and '/'.
func allowedURLByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}
