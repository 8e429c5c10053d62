package sticky_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
	"github.com/lbkit/lbkit/sticky"
)

// records keeps copies of the access records it receives, for the test to
// take in order.
type records struct {
	*testutil.Records[lb.AccessRecord]
}

func newRecords() *records { return &records{testutil.NewRecords[lb.AccessRecord](100)} }

// Log keeps a copy of r.
func (c *records) Log(r *lb.AccessRecord) { c.Add(*r) }

// TestCookieAccessLogMoved: a request with a valid cookie logs a pinned
// server (cookie flags "VN"); once that server is down, the next request
// with the same cookie logs a moved pin ("DI"), and the one after, with
// the new cookie, is pinned again.
func TestCookieAccessLogMoved(t *testing.T) {
	testutil.CheckLeaks(t)
	ck := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: key1}}}
	pool := &lb.Pool{Name: "web", Balancer: &balancer.RoundRobin{}, Affinity: ck}
	var servers []lb.Server
	for _, n := range []string{"a", "b"} {
		servers = append(servers, lb.Server{Name: n, Addr: testutil.HTTPBackend(t, n).Addr})
	}
	must(t, pool.Update(servers))
	logs := newRecords()
	proxy := &lb.ReverseProxy{Name: "fe", Pool: pool, AccessLog: logs}
	url := "http://" + serveHTTP(t, &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}, listen(t), proxy)
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()

	line := func(r lb.AccessRecord) string { return string(accesslog.AppendHAProxy(nil, &r)) }
	setCookie := func(h http.Header) string {
		for _, sc := range (&http.Response{Header: h}).Cookies() {
			if sc.Name == "SRV" {
				return sc.Name + "=" + sc.Value
			}
		}
		t.Fatalf("no cookie set: %v", h)
		return ""
	}

	home, h := do(t, c, url)
	r := logs.Next(t)
	if r.StickyPinned || r.StickyMoved || !strings.Contains(line(r), " - - ---- ") {
		t.Errorf("first request: pinned %v moved %v: %s", r.StickyPinned, r.StickyMoved, line(r))
	}
	cookie := setCookie(h)

	got, _ := do(t, c, url, cookie)
	r = logs.Next(t)
	if got != home || !r.StickyPinned || r.StickyMoved || !strings.Contains(line(r), " - - --VN ") {
		t.Errorf("pinned request to %s (home %s): pinned %v moved %v: %s", got, home, r.StickyPinned, r.StickyMoved, line(r))
	}

	pool.SetState(home, lb.StateDown, "test")
	got, h = do(t, c, url, cookie)
	r = logs.Next(t)
	if got == home || r.StickyPinned || !r.StickyMoved || !strings.Contains(line(r), " - - --DI ") {
		t.Errorf("moved request to %s (home %s down): pinned %v moved %v: %s", got, home, r.StickyPinned, r.StickyMoved, line(r))
	}
	var js bytes.Buffer
	w := accesslog.NewWriter(accesslog.Slog(slog.NewJSONHandler(&js, nil)), 0)
	w.Log(&r)
	must(t, w.Close())
	if !strings.Contains(js.String(), `"sticky_moved":true`) {
		t.Errorf("JSON record lacks sticky_moved: %s", js.String())
	}

	moved := got
	got, _ = do(t, c, url, setCookie(h))
	r = logs.Next(t)
	if got != moved || !r.StickyPinned || r.StickyMoved {
		t.Errorf("re-pinned request to %s (moved to %s): pinned %v moved %v", got, moved, r.StickyPinned, r.StickyMoved)
	}

	// A forged cookie is no pin: balanced, neither pinned nor moved.
	do(t, c, url, "SRV=forged.value")
	if r = logs.Next(t); r.StickyPinned || r.StickyMoved {
		t.Errorf("forged cookie: pinned %v moved %v", r.StickyPinned, r.StickyMoved)
	}
}

// TestSourceIPAccessLogMoved: an L4 client pinned by its address logs
// StickyPinned; once its server is down, its next session logs
// StickyMoved, and the one after is pinned to the new server.
func TestSourceIPAccessLogMoved(t *testing.T) {
	testutil.CheckLeaks(t)
	pool := &lb.Pool{Name: "tcp", Balancer: &balancer.RoundRobin{}, Affinity: &sticky.SourceIP{}}
	var servers []lb.Server
	for _, n := range []string{"a", "b"} {
		servers = append(servers, lb.Server{Name: n, Addr: testutil.NameServer(t, n).Addr})
	}
	must(t, pool.Update(servers))
	logs := newRecords()
	addr := serveHTTPFrontend(t, &lb.TCPFrontend{Name: "l4", Backend: pool, AccessLog: logs})

	const src = "127.0.0.7"
	home := dialFrom(t, src, addr)
	if r := logs.Next(t); r.StickyPinned || r.StickyMoved || r.Server != home {
		t.Errorf("first session: %+v", r)
	}
	if got := dialFrom(t, src, addr); got != home {
		t.Fatalf("pinned client went to %s, not %s", got, home)
	}
	if r := logs.Next(t); !r.StickyPinned || r.StickyMoved {
		t.Errorf("pinned session: pinned %v moved %v", r.StickyPinned, r.StickyMoved)
	}
	pool.SetState(home, lb.StateDown, "test")
	moved := dialFrom(t, src, addr)
	r := logs.Next(t)
	if moved == home || r.Server != moved || r.StickyPinned || !r.StickyMoved {
		t.Errorf("moved session to %s (home %s down): %+v", moved, home, r)
	}
	if line := string(accesslog.AppendHAProxy(nil, &r)); !strings.Contains(line, " l4 tcp/"+moved+" ") {
		t.Errorf("tcplog line %s", line)
	}
	if got := dialFrom(t, src, addr); got != moved {
		t.Fatalf("re-pinned client went to %s, not %s", got, moved)
	}
	if r := logs.Next(t); !r.StickyPinned || r.StickyMoved {
		t.Errorf("re-pinned session: pinned %v moved %v", r.StickyPinned, r.StickyMoved)
	}
}
