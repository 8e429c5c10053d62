package acl

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/lbkit/lbkit/internal/hostname"
)

// hostPattern is a host name ("example.com") or, when wild, the suffix of
// "*.example.com", lower-cased and without a trailing dot.
type hostPattern struct {
	name string
	wild bool
}

// hostPatterns validates Host and SNI patterns.
func hostPatterns(list []string) ([]hostPattern, error) {
	var ps []hostPattern
	for _, s := range list {
		p, err := parseHostPattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func parseHostPattern(s string) (hostPattern, error) {
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	var p hostPattern
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, p.wild = rest, true
	}
	if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && !p.wild {
		p.name = a.String()
		return p, nil
	}
	if !hostname.Valid(name) {
		return p, fmt.Errorf("invalid host pattern %q", s)
	}
	p.name = name
	return p, nil
}

// matchHosts reports whether name matches any pattern, case-insensitively.
// It does not allocate.
func matchHosts(ps []hostPattern, name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	for _, p := range ps {
		if p.wild {
			n := len(name) - len(p.name)
			if n > 1 && name[n-1] == '.' && asciiEqualFold(name[n:], p.name) {
				return true
			}
		} else if asciiEqualFold(name, p.name) {
			return true
		}
	}
	return false
}

// hostName returns the host of a Host header value, without port or IPv6
// brackets. It does not allocate.
func hostName(hostport string) string {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[1:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && strings.IndexByte(hostport[:i], ':') < 0 {
		return hostport[:i]
	}
	return hostport
}

// cleanPath returns p as servers will understand it: rooted, with "." and
// ".." elements resolved and repeated slashes merged, a trailing slash kept.
// Paths already clean are returned as is, without allocating.
func cleanPath(p string) string {
	if isClean(p) {
		return p
	}
	np := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		if strings.HasPrefix(rest, "/") || rest == "." || rest == ".." ||
			strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether s equals the lower-case ASCII string lower,
// ignoring ASCII case only: unlike strings.EqualFold, "\u212a" (the Kelvin
// sign) does not match "k".
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
