package lb_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

type named string

func (n named) ServeConn(ctx context.Context, c *lb.Conn) { c.Close() }

func TestMuxMatch(t *testing.T) {
	m := &lb.Mux{Default: named("default")}
	for pattern, b := range map[string]named{
		"example.com":       "exact",
		"*.example.com":     "wild",
		"*.api.example.com": "api",
		"DB.Example.COM.":   "db",
	} {
		must(t, m.Handle(pattern, b))
	}
	tests := map[string]named{
		"example.com":          "exact",
		"EXAMPLE.com.":         "exact",
		"www.example.com":      "wild",
		"a.b.example.com":      "wild",
		"v1.api.example.com":   "api",
		"api.example.com":      "wild", // *.api matches below api only
		"db.example.com":       "db",
		"other.org":            "default",
		"":                     "default",
		"example.com.evil.org": "default",
		"notexample.com":       "default",
	}
	for sni, want := range tests {
		if got := m.Match(sni); got != want {
			t.Errorf("Match(%q) = %v, want %v", sni, got, want)
		}
	}
	for _, bad := range []string{"", "*.", "a..b", "*.*.x", "a b", "host:443", ".x", "\x95", "bücher.de", strings.Repeat("a", 64) + ".com"} {
		if err := m.Handle(bad, named("x")); err == nil {
			t.Errorf("Handle(%q) accepted", bad)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { m.Match("www.example.com") }); allocs != 0 {
		t.Errorf("Match allocates %.0f times", allocs)
	}
}

func TestSwitchServesCurrent(t *testing.T) {
	var got []string
	mk := func(name string) lb.Backend {
		return lb.BackendFunc(func(ctx context.Context, c *lb.Conn) { got = append(got, name); c.Close() })
	}
	sw := lb.NewSwitch(mk("one"))
	conn := func() *lb.Conn {
		a, b := net.Pipe()
		b.Close()
		return lb.NewConn(a, "test")
	}
	sw.ServeConn(context.Background(), conn())
	sw.Store(mk("two"))
	sw.ServeConn(context.Background(), conn())
	if len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("served by %v", got)
	}
}
