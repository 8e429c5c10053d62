package sticky_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// issue returns the cookie value ck sets for a response from server s.
func issue(t testing.TB, ck *sticky.Cookie, p *lb.Pool, name string) string {
	t.Helper()
	s := server(t, p, name)
	h := http.Header{}
	ck.PinResponse(h, lb.PickInfo{Request: httptest.NewRequest("GET", "/", nil)}, s, false)
	resp := http.Response{Header: h}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("Set-Cookie = %q", h.Values("Set-Cookie"))
	}
	return cs[0].Value
}

func server(t testing.TB, p *lb.Pool, name string) *lb.Server {
	t.Helper()
	for _, s := range p.Snapshot().Servers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no server %s", name)
	return nil
}

// lookup returns the server ck pins a request with the Cookie header lines
// to, or "".
func lookup(ck *sticky.Cookie, snap *lb.Snapshot, lines ...string) string {
	r := httptest.NewRequest("GET", "/", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	s, ok := ck.Lookup(snap, lb.PickInfo{Request: r})
	if !ok {
		return ""
	}
	return s.Name
}

// TestCookieForged: only values signed by a valid key for a pickable server
// are honoured; copies altered in any way, values signed by another key or
// for another cookie name, and plain names or addresses are not.
func TestCookieForged(t *testing.T) {
	p := poolOf(t, "a", "b", "c")
	ck := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: key1}}}
	va := issue(t, ck, p, "a")
	vb := issue(t, ck, p, "b")

	foreign := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: key2}}}
	vbForeign := issue(t, foreign, p, "b")
	otherName := &sticky.Cookie{Cookie: http.Cookie{Name: "OTHER"}, Keys: []sticky.Key{{Secret: key1}}}
	vbOtherName := issue(t, otherName, p, "b")

	kidA, tagA, _ := strings.Cut(va, ".")
	_, tagB, _ := strings.Cut(vb, ".")
	_, tagForeign, _ := strings.Cut(vbForeign, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	addr := server(t, p, "b").Addr

	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"valid a", []string{"SRV=" + va}, "a"},
		{"valid b among others", []string{"x=1; SRV=" + vb + "; y=2"}, "b"},
		{"quoted", []string{`SRV="` + vb + `"`}, "b"},
		{"second header line (HTTP/2)", []string{"x=1", "SRV=" + vb}, "b"},
		{"forged first, valid second", []string{"SRV=junk; SRV=" + vb}, "b"},
		{"last tag char altered", []string{"SRV=" + flip(va, len(va)-1)}, ""},
		{"first tag char altered", []string{"SRV=" + flip(va, len(kidA)+1)}, ""},
		{"key id altered", []string{"SRV=" + flip(va, 0)}, ""},
		{"key id of a, tag of b swapped in", []string{"SRV=" + kidA + "." + tagB}, "b"},
		{"tag of another key under ours", []string{"SRV=" + kidA + "." + tagForeign}, ""},
		{"signed by a foreign key", []string{"SRV=" + vbForeign}, ""},
		{"signed for another cookie name", []string{"SRV=" + vbOtherName}, ""},
		{"right value, wrong cookie name", []string{"OTHER=" + vb}, ""},
		{"truncated", []string{"SRV=" + vb[:len(vb)-1]}, ""},
		{"extended", []string{"SRV=" + vb + "A"}, ""},
		{"tag only", []string{"SRV=" + tagA}, ""},
		{"server name", []string{"SRV=b"}, ""},
		{"server address", []string{"SRV=" + addr}, ""},
		{"empty", []string{"SRV="}, ""},
		{"no cookie", nil, ""},
	}
	snap := p.Snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lookup(ck, snap, tt.lines...); got != tt.want {
				t.Fatalf("Lookup(%q) = %q, want %q", tt.lines, got, tt.want)
			}
		})
	}
	for _, v := range []string{va, vb} {
		for _, s := range p.Snapshot().Servers {
			if strings.Contains(v, s.Addr) || strings.Contains(v, s.Name+".") || strings.Contains(v, "192.0.2") {
				t.Fatalf("value %q reveals %s", v, s.Addr)
			}
		}
	}
}

// TestCookieForgedEndToEnd sends forged cookies naming another server
// through a real proxy: none is honoured, each response re-pins.
func TestCookieForgedEndToEnd(t *testing.T) {
	testutil.CheckLeaks(t)
	st := newCookieStack(t, 2)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	_, h := do(t, c, st.url+"/")
	valid := (&http.Response{Header: h}).Cookies()[0].Value
	home, _ := do(t, c, st.url+"/", "SRV="+valid)
	other := "s0"
	if home == "s0" {
		other = "s1"
	}
	foreign := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: key2}}}
	forged := []string{
		issue(t, foreign, st.pool, other), // signed with another key
		valid[:len(valid)-2] + "AA",       // altered copy
		other,                             // the name itself
		st.backends[other].Addr,           // the address
	}
	for _, f := range forged {
		// Whatever the balancer does, the forged cookie is never honoured:
		// the response always sets a fresh cookie, and the server it names
		// is the one that answered.
		for range 4 {
			got, h := do(t, c, st.url+"/", "SRV="+f)
			cs := (&http.Response{Header: h}).Cookies()
			if len(cs) != 1 || cs[0].Value == f {
				t.Fatalf("forged %q: Set-Cookie %q", f, h.Values("Set-Cookie"))
			}
			if again, _ := do(t, c, st.url+"/", "SRV="+cs[0].Value); again != got {
				t.Fatalf("forged %q: re-pinned to %s but its cookie leads to %s", f, got, again)
			}
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	p := poolOf(t, "a")
	tests := []struct {
		name string
		tmpl http.Cookie
		want []string
	}{
		{"defaults", http.Cookie{}, []string{"LBSTICKY=", "Path=/"}},
		{"all set", http.Cookie{Name: "S", Path: "/app", Domain: "example.com", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 3600},
			[]string{"S=", "Path=/app", "Domain=example.com", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=3600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := &sticky.Cookie{Cookie: tt.tmpl, Keys: []sticky.Key{{Secret: key1}}}
			must(t, ck.Validate())
			h := http.Header{}
			ck.PinResponse(h, lb.PickInfo{Request: httptest.NewRequest("GET", "/", nil)}, server(t, p, "a"), false)
			sc := h.Get("Set-Cookie")
			for _, w := range tt.want {
				if !strings.Contains(sc, w) {
					t.Errorf("Set-Cookie %q lacks %q", sc, w)
				}
			}
		})
	}
}

func TestCookieValidate(t *testing.T) {
	tests := []struct {
		name string
		ck   *sticky.Cookie
		want error
	}{
		{"zero value", &sticky.Cookie{}, nil},
		{"two keys", &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}, {Secret: key2}}}, nil},
		{"short key", &sticky.Cookie{Keys: []sticky.Key{{Secret: []byte("short")}}}, sticky.ErrShortKey},
		{"duplicate key", &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}, {Secret: key1}}}, sticky.ErrDuplicateKey},
		{"bad name", &sticky.Cookie{Cookie: http.Cookie{Name: "a b"}}, sticky.ErrCookieName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ck.Validate()
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errorsIs(err, tt.want)) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCookieRotation: a new signing key keeps old cookies valid during the
// grace period, re-issues them under the new key, and drops them after.
func TestCookieRotation(t *testing.T) {
	p := poolOf(t, "a", "b")
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	old := issue(t, ck, p, "b")

	must(t, ck.SetKeys([]sticky.Key{{Secret: key2}, {Secret: key1, NotAfter: time.Now().Add(time.Hour)}}))
	if got := lookup(ck, p.Snapshot(), "LBSTICKY="+old); got != "b" {
		t.Fatalf("old cookie during grace: %q, want b", got)
	}
	h := http.Header{}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "LBSTICKY="+old)
	ck.PinResponse(h, lb.PickInfo{Request: r}, server(t, p, "b"), true)
	cs := (&http.Response{Header: h}).Cookies()
	if len(cs) != 1 || cs[0].Value == old || lookup(ck, p.Snapshot(), "LBSTICKY="+cs[0].Value) != "b" {
		t.Fatalf("old cookie not re-issued under the new key: %q", h.Values("Set-Cookie"))
	}
	fresh := cs[0].Value
	if strings.SplitN(fresh, ".", 2)[0] == strings.SplitN(old, ".", 2)[0] {
		t.Fatalf("new cookie %q has the old key id (%q)", fresh, old)
	}
	// A current cookie is not set again.
	h = http.Header{}
	r.Header.Set("Cookie", "LBSTICKY="+fresh)
	ck.PinResponse(h, lb.PickInfo{Request: r}, server(t, p, "b"), true)
	if len(h) != 0 {
		t.Fatalf("current cookie re-issued: %v", h)
	}

	must(t, ck.SetKeys([]sticky.Key{{Secret: key2}, {Secret: key1, NotAfter: time.Now().Add(-time.Second)}}))
	if got := lookup(ck, p.Snapshot(), "LBSTICKY="+old); got != "" {
		t.Fatalf("old cookie after grace: %q, want none", got)
	}
	if got := lookup(ck, p.Snapshot(), "LBSTICKY="+fresh); got != "b" {
		t.Fatalf("new cookie: %q, want b", got)
	}
	if err := ck.SetKeys([]sticky.Key{{Secret: []byte("x")}}); !errorsIs(err, sticky.ErrShortKey) {
		t.Fatalf("SetKeys(short) = %v", err)
	}
	if err := ck.SetKeys(nil); err == nil {
		t.Fatal("SetKeys(nil) accepted")
	}
}

// TestCookieInstances: two instances with the same keys and server names,
// sharing nothing else, honour each other's cookies.
func TestCookieInstances(t *testing.T) {
	p1, p2 := poolOf(t, "a", "b", "c"), poolOf(t, "a", "b", "c")
	ck1 := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	ck2 := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	for _, name := range []string{"a", "b", "c"} {
		if got := lookup(ck2, p2.Snapshot(), "LBSTICKY="+issue(t, ck1, p1, name)); got != name {
			t.Fatalf("cookie of instance 1 for %s leads instance 2 to %q", name, got)
		}
	}
	// A zero-valued Cookie generates its own key: its cookies are its own.
	z1, z2 := &sticky.Cookie{}, &sticky.Cookie{}
	v := issue(t, z1, p1, "a")
	if lookup(z1, p1.Snapshot(), "LBSTICKY="+v) != "a" || lookup(z2, p2.Snapshot(), "LBSTICKY="+v) != "" {
		t.Fatal("generated keys: cookie not honoured by its instance only")
	}
}

// TestCookieUnpickable: a cookie for a down, draining or removed server, or
// one the request must avoid, is not honoured.
func TestCookieUnpickable(t *testing.T) {
	p := poolOf(t, "a", "b", "c")
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	p.Affinity = ck
	vb := "LBSTICKY=" + issue(t, ck, p, "b")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", vb)

	l, err := p.Acquire(context.Background(), lb.PickInfo{Request: req})
	must(t, err)
	l.Done(lb.Outcome{})
	if l.Server.Name != "b" || !l.Sticky {
		t.Fatalf("Acquire = %s sticky %v, want b sticky", l.Server.Name, l.Sticky)
	}
	// A retry avoiding b (a failed connection) goes elsewhere.
	l, err = p.Acquire(context.Background(), lb.PickInfo{Request: req, Avoid: []*lb.Server{server(t, p, "b")}})
	must(t, err)
	l.Done(lb.Outcome{})
	if l.Server.Name == "b" || l.Sticky {
		t.Fatalf("Acquire avoiding b = %s sticky %v", l.Server.Name, l.Sticky)
	}
	// And the full snapshot is still honoured afterwards.
	if got := lookup(ck, p.Snapshot(), vb); got != "b" {
		t.Fatalf("after a derived snapshot: %q", got)
	}

	p.SetState("b", lb.StateDown, "test")
	if got := lookup(ck, p.Snapshot(), vb); got != "" {
		t.Fatalf("down: %q", got)
	}
	p.SetState("b", lb.StateUp, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Drain(ctx, "b")
	if got := lookup(ck, p.Snapshot(), vb); got != "" {
		t.Fatalf("draining: %q", got)
	}
	p.Undrain("b")
	if got := lookup(ck, p.Snapshot(), vb); got != "b" {
		t.Fatalf("undrained: %q", got)
	}
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "192.0.2.1:1"}, {Name: "c", Addr: "192.0.2.1:3"}}))
	if got := lookup(ck, p.Snapshot(), vb); got != "" {
		t.Fatalf("removed: %q", got)
	}
}

func TestCookieLookupAllocs(t *testing.T) {
	p := poolOf(t, "a", "b", "c", "d")
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}, {Secret: key2}}}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "theme=dark; LBSTICKY="+issue(t, ck, p, "c")+"; lang=fr")
	info := lb.PickInfo{Request: r}
	snap := p.Snapshot()
	if n := testing.AllocsPerRun(1000, func() {
		if s, ok := ck.Lookup(snap, info); !ok || s.Name != "c" {
			t.Fatal("lookup failed")
		}
	}); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}
