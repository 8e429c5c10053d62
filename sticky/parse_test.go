package sticky

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func values(lines []string, name string) []string {
	var out []string
	cookieValues(http.Header{"Cookie": lines}, name, func(v string) bool {
		out = append(out, v)
		return false
	})
	return out
}

func TestCookieValues(t *testing.T) {
	tests := []struct {
		lines []string
		want  []string
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{"SRV=x"}, []string{"x"}},
		{[]string{" SRV = x ; "}, []string{"x"}},
		{[]string{"a=1;SRV=x;b=2"}, []string{"x"}},
		{[]string{"a=1; \tSRV=\"x.y\""}, []string{"x.y"}},
		{[]string{`SRV="`}, []string{`"`}},
		{[]string{"SRV=x; SRV=y", "SRV=z"}, []string{"x", "y", "z"}},
		{[]string{"SRV"}, nil},
		{[]string{"SRVX=1; XSRV=2; srv=3"}, nil},
		{[]string{"SRV=a=b"}, []string{"a=b"}},
		{[]string{";;;SRV=;"}, []string{""}},
		{[]string{strings.Repeat("a=b; ", 2000) + "SRV=late"}, nil}, // beyond maxCookieLine
	}
	for _, tt := range tests {
		if got := values(tt.lines, "SRV"); !slices.Equal(got, tt.want) {
			t.Errorf("values(%q) = %q, want %q", tt.lines, got, tt.want)
		}
	}
	// yield returning true stops the scan.
	n := 0
	if !cookieValues(http.Header{"Cookie": {"SRV=1; SRV=2"}}, "SRV", func(string) bool { n++; return true }) || n != 1 {
		t.Fatalf("scan did not stop at the first accepted value (%d calls)", n)
	}
}

// FuzzCookieValues checks the scanner against net/http's cookie parser: a
// non-empty cookie net/http finds, the scanner finds too, and every value it yields
// comes from the line without a separator in it.
func FuzzCookieValues(f *testing.F) {
	for _, s := range []string{
		"SRV=abc", "a=1; SRV=x.y; b=2", `SRV="quoted"`, " SRV = spaced ;", "SRV", "=;=;", "SRV=a=b",
		"SRV=1;SRV=2", "\tSRV=\t", `SRV=""`, "SRV=\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := values([]string{line}, "SRV")
		for _, v := range got {
			if strings.ContainsRune(v, ';') || !strings.Contains(line, v) {
				t.Fatalf("value %q from %q", v, line)
			}
		}
		if len(line) > maxCookieLine || strings.ContainsAny(line, "\r\n") {
			return
		}
		r := &http.Request{Header: http.Header{"Cookie": {line}}}
		for _, c := range r.Cookies() {
			// The scanner trims blanks around values (RFC 6265 has none
			// there) and skips pairs without '=', which net/http keeps.
			if v := trimSpace(c.Value); c.Name == "SRV" && v != "" && !slices.Contains(got, v) && !slices.Contains(got, c.Value) {
				t.Fatalf("net/http finds SRV=%q in %q, the scanner %q", c.Value, line, got)
			}
		}
	})
}
