package tlsmode_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/tlsmode"
)

// FuzzParseProfile checks that ParseProfile accepts exactly the three
// names in any case and the empty string, and that a profile's String
// parses back to it.
func FuzzParseProfile(f *testing.F) {
	for _, s := range []string{"", "old", "Intermediate", "MODERN", "modern ", "Profile(3)", "ſtrict", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := tlsmode.ParseProfile(s)
		switch strings.ToLower(s) {
		case "", "old", "intermediate", "modern":
			if err != nil {
				t.Fatalf("ParseProfile(%q): %v", s, err)
			}
		default:
			if !errors.Is(err, tlsmode.ErrUnknownProfile) {
				t.Fatalf("ParseProfile(%q) = %v, %v; want ErrUnknownProfile", s, p, err)
			}
			return
		}
		back, err := tlsmode.ParseProfile(p.String())
		if err != nil || back != p {
			t.Fatalf("%q: profile %v prints as %q, which parses as %v, %v", s, p, p.String(), back, err)
		}
	})
}
