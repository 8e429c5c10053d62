package sticky

import "net/http"

// maxCookieLine bounds the part of one Cookie header line that is scanned;
// net/http bounds the whole header already (MaxHeaderBytes), this bounds
// the work per lookup regardless of the server's settings.
const maxCookieLine = 8 << 10

// cookieValues calls yield with the value of every cookie named name in the
// Cookie header lines of h, in order, until yield returns true. It does not
// allocate. Pairs are separated by ';' with optional spaces or tabs around
// them (RFC 6265 section 5.4, as browsers send it, and section 8.2.3 of RFC
// 9113 for HTTP/2, where each cookie may come in a line of its own); a value
// in double quotes is returned without them. Malformed pairs (no '=') are
// skipped.
func cookieValues(h http.Header, name string, yield func(value string) bool) bool {
	for _, line := range h["Cookie"] {
		if len(line) > maxCookieLine {
			line = line[:maxCookieLine]
		}
		for len(line) > 0 {
			var part string
			part, line = cutByte(line, ';')
			part = trimSpace(part)
			k, v, ok := cutByteOK(part, '=')
			if !ok || trimSpace(k) != name {
				continue
			}
			v = trimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if yield(v) {
				return true
			}
		}
	}
	return false
}

func cutByte(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func cutByteOK(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
