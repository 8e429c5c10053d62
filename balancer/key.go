package balancer

import (
	"encoding/binary"
	"net/textproto"
	"strings"

	"github.com/lbkit/lbkit/lb"
)

// A Key extracts the hashing key of a pick for Hash. It returns the key's
// hash and true, or false when the pick carries no key (no such header,
// cookie or address); Hash then spreads the pick without affinity.
//
// A Key is called concurrently on the pick path: it must not block, and
// should not allocate. Custom keys hash with HashString.
type Key func(info lb.PickInfo) (hash uint64, ok bool)

// SourceIP keys picks by the client's IP address (PickInfo.Client, without
// the port). IPv4 and IPv4-mapped IPv6 addresses hash alike. It works for L4
// and L7 traffic; behind another proxy, the client address is only right
// when a trusted PROXY header carried it.
func SourceIP(info lb.PickInfo) (uint64, bool) {
	if !info.Client.IsValid() {
		return 0, false
	}
	a := info.Client.Addr().As16()
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	return mix(mix(hi^fnvOffset) ^ lo), true
}

// URI keys HTTP picks by the request's path and query ("/a/b?q=1"). Picks
// without an HTTP request have no key.
func URI(info lb.PickInfo) (uint64, bool) {
	r := info.Request
	if r == nil || r.URL == nil {
		return 0, false
	}
	h := fnvString(fnvOffset, r.URL.Path)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		h ^= '?'
		h *= fnvPrime
		h = fnvString(h, r.URL.RawQuery)
	}
	return mix(h), true
}

// SNI keys picks by the server name of the client's TLS ClientHello. Picks
// without SNI have no key.
func SNI(info lb.PickInfo) (uint64, bool) {
	if info.SNI == "" {
		return 0, false
	}
	return HashString(info.SNI), true
}

// Header returns a Key that hashes the first value of the named HTTP request
// header (the name is case-insensitive; "Host" is the request's host).
// Requests without the header, or with an empty value, have no key.
func Header(name string) Key {
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if canon == "Host" {
		return func(info lb.PickInfo) (uint64, bool) {
			if r := info.Request; r != nil && r.Host != "" {
				return HashString(r.Host), true
			}
			return 0, false
		}
	}
	return func(info lb.PickInfo) (uint64, bool) {
		r := info.Request
		if r == nil {
			return 0, false
		}
		if v := r.Header[canon]; len(v) > 0 && v[0] != "" {
			return HashString(v[0]), true
		}
		return 0, false
	}
}

// Cookie returns a Key that hashes the value of the named cookie of an HTTP
// request (the name is case-sensitive, as in net/http). The Cookie header is
// parsed in place, without allocating. As with http.Request.Cookie, the
// first cookie of that name counts; requests without it, or where it is
// empty, have no key.
func Cookie(name string) Key {
	return func(info lb.PickInfo) (uint64, bool) {
		r := info.Request
		if r == nil {
			return 0, false
		}
		for _, line := range r.Header["Cookie"] {
			if v, found := cookieValue(line, name); found {
				return HashString(v), v != ""
			}
		}
		return 0, false
	}
}

// cookieValue finds the value of the first cookie called name in a Cookie
// header line, the way net/http reads it: pairs separated by ';' and trimmed
// of blanks, names trimmed, values stripped of surrounding double quotes.
// It reports whether the cookie was found.
func cookieValue(line, name string) (string, bool) {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		k, v, ok := strings.Cut(strings.Trim(part, " \t"), "=")
		if !ok || strings.Trim(k, " \t") != name {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return "", false
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the finalizer of SplitMix64: it spreads every input bit over the
// whole output, which FNV-1a alone does poorly for short keys.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// HashString hashes s the way the built-in keys do (FNV-1a, then a 64-bit
// finalizer). It does not allocate; use it in custom Keys.
func HashString(s string) uint64 { return mix(fnvString(fnvOffset, s)) }
