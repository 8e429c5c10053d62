package sticky_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// FuzzCookieLookup: whatever the Cookie header, Lookup honours it only if
// it carries the exact value issued for the server it returns.
func FuzzCookieLookup(f *testing.F) {
	p := poolOf(f, "a", "b", "c")
	ck := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: key1}, {Secret: key2}}}
	issued := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		issued[n] = issue(f, ck, p, n)
		f.Add("SRV=" + issued[n])
	}
	f.Add("SRV=" + issued["a"][:len(issued["a"])-1] + "B")
	f.Add("x=1; SRV=" + strings.ToUpper(issued["b"]))
	f.Add(`SRV="` + issued["c"])
	snap := p.Snapshot()
	f.Fuzz(func(t *testing.T, line string) {
		r := &http.Request{Header: http.Header{"Cookie": {line}}}
		s, ok := ck.Lookup(snap, lb.PickInfo{Request: r})
		if ok && !strings.Contains(line, issued[s.Name]) {
			t.Fatalf("%q honoured for %s", line, s.Name)
		}
	})
}
