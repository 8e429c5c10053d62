package hostname

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"example.com", true},
		{"a_b-c.Example.COM", true},
		{"x", true},
		{strings.Repeat("a", 63) + ".com", true},
		{strings.Repeat("a", 64) + ".com", false},
		{strings.Repeat("a.", 126) + "ab", false}, // 254 bytes
		{"", false},
		{"example.com.", false},
		{".example.com", false},
		{"a..b", false},
		{"*.example.com", false},
		{"exa mple.com", false},
		{"2001:db8::1", false},
		{"bücher.de", false},
	} {
		if got := Valid(c.s); got != c.want {
			t.Errorf("Valid(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
