// Package hostname checks DNS host names as lbkit's host matchers (lb.Mux,
// acl host patterns) and configuration validation accept them.
package hostname

// Valid reports whether s is a DNS name: dot-separated labels of ASCII
// letters, digits, '-' and '_', none empty or longer than 63 bytes, at
// most 253 bytes in all, without a trailing dot. It does not allocate.
func Valid(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}
