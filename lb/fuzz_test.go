package lb_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

// FuzzMux checks that any accepted route pattern routes its own name, and
// that matching never panics or routes a name outside the pattern.
func FuzzMux(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "A.B.", "*.", "x..y", "*.*.a", "xn--bcher-kva.example"} {
		f.Add(s, "www.example.com")
	}
	f.Fuzz(func(t *testing.T, pattern, sni string) {
		var m lb.Mux
		err := m.Handle(pattern, named("route"))
		if got := m.Match(sni); got != nil {
			if err != nil {
				t.Fatalf("rejected pattern %q still routes %q", pattern, sni)
			}
			name := strings.TrimSuffix(asciiLower(sni), ".")
			p := strings.TrimSuffix(asciiLower(pattern), ".")
			if rest, ok := strings.CutPrefix(p, "*."); ok {
				if !strings.HasSuffix(name, "."+rest) {
					t.Fatalf("wildcard %q routed %q", pattern, sni)
				}
			} else if name != p {
				t.Fatalf("exact %q routed %q", pattern, sni)
			}
		}
		if err == nil && !strings.HasPrefix(pattern, "*.") && m.Match(pattern) == nil {
			t.Fatalf("pattern %q does not route its own name", pattern)
		}
	})
}

// FuzzClientIP checks the X-Forwarded-For value against netip's parse.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:1", "[::ffff:1.2.3.4]:5", "1.2.3.4", "[fe80::1%en0]:9", ":80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		got := lb.ClientIPForTest(remote)
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got != "" {
				t.Fatalf("clientIP(%q) = %q for an invalid address", remote, got)
			}
			return
		}
		if want := ap.Addr().Unmap().String(); got != want {
			t.Fatalf("clientIP(%q) = %q, want %q", remote, got, want)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
