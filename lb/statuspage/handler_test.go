package statuspage_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/statuspage"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serve serves h on 127.0.0.1 until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if p, ok := h.(*lb.ReverseProxy); ok {
		srv.ConnState = p.ConnState
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// webFixture is a pool of two servers behind a ReverseProxy, on loopback,
// and a status page that shows both.
type webFixture struct {
	pool  *lb.Pool
	proxy *lb.ReverseProxy
	page  *statuspage.Handler
	front string // the proxy's URL
	url   string // the page's URL
}

func newWebFixture(t *testing.T, refresh time.Duration) *webFixture {
	t.Helper()
	a := testutil.HTTPBackend(t, "a")
	b := testutil.HTTPBackend(t, "b")
	f := &webFixture{pool: &lb.Pool{Name: "web"}}
	must(t, f.pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}, {Name: "b", Addr: b.Addr}}))
	f.proxy = &lb.ReverseProxy{Name: "front", Pool: f.pool}
	f.front = serve(t, f.proxy)
	f.page = &statuspage.Handler{Title: "test", Refresh: refresh}
	f.page.AddFrontend(f.proxy.Name, f.proxy)
	f.page.AddPool(f.pool.Name, f.pool)
	f.url = serve(t, f.page)
	return f
}

func client(t *testing.T) *http.Client {
	c := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp, string(body)
}

func report(t *testing.T, c *http.Client, url string) statuspage.Report {
	t.Helper()
	resp, body := get(t, c, url+"?format=json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var r statuspage.Report
	must(t, json.Unmarshal([]byte(body), &r))
	return r
}

func TestTrafficShows(t *testing.T) {
	testutil.CheckLeaks(t)
	f := newWebFixture(t, 0)
	c := client(t)
	start := report(t, c, f.url) // the first sample of the rates
	if len(start.Backends) != 1 || start.Backends[0].SessionRate != 0 {
		t.Fatalf("first report: %+v", start.Backends)
	}

	const n = 10
	for range n {
		if resp, body := get(t, c, f.front+"/"); resp.StatusCode != 200 {
			t.Fatalf("GET /: %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, c, f.front+"/status?code=404"); resp.StatusCode != 404 {
		t.Fatalf("GET /status?code=404: %d", resp.StatusCode)
	}
	time.Sleep(time.Until(start.Time.Add(1100 * time.Millisecond))) // past one rate interval

	r := report(t, c, f.url)
	if len(r.Frontends) != 1 || len(r.Backends) != 1 {
		t.Fatalf("report: %d frontends, %d backends", len(r.Frontends), len(r.Backends))
	}
	fe := r.Frontends[0]
	if fe.Name != "front" || fe.Requests != n+1 || fe.Responses.Class2xx != n || fe.Responses.Class4xx != 1 {
		t.Errorf("frontend: %+v", fe)
	}
	if fe.RequestRate <= 0 || fe.RequestRate > n+1 {
		t.Errorf("frontend request rate %v, want in (0, %d]", fe.RequestRate, n+1)
	}
	be := r.Backends[0]
	if be.Name != "web" || be.Status != "UP" || be.Active != 2 || be.SessionsTotal != n+1 || be.Requests != n+1 ||
		be.Responses.Class2xx != n || be.Responses.Class4xx != 1 {
		t.Errorf("backend: %+v", be)
	}
	if be.SessionRate <= 0 || be.RequestRate <= 0 {
		t.Errorf("backend rates %v %v, want > 0", be.SessionRate, be.RequestRate)
	}
	if len(be.Servers) != 2 {
		t.Fatalf("servers: %+v", be.Servers)
	}
	var total uint64
	for i, s := range be.Servers {
		if s.Name != []string{"a", "b"}[i] || s.Status != "UP" || s.State != "up" || s.Weight != 1 || s.Check != nil {
			t.Errorf("server %d: %+v", i, s)
		}
		if s.SessionsTotal < n/2 || s.BytesOut == 0 || s.SessionRate <= 0 {
			t.Errorf("server %s: %d sessions, %d bytes out, rate %v", s.Name, s.SessionsTotal, s.BytesOut, s.SessionRate)
		}
		total += s.SessionsTotal
	}
	if total != n+1 {
		t.Errorf("servers' sessions: %d, want %d", total, n+1)
	}

	resp, html := get(t, c, f.url)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("HTML: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<title>lbkit status: test</title>",
		`<meta http-equiv="refresh" content="5">`,
		`<td class="l">front</td>`,
		`Backend web: <span class="up">UP</span>, 2 active, 0 backup`,
		`<tr class="up"><td class="l">a</td>`,
		`<tr class="up"><td class="l">b</td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q:\n%s", want, html)
		}
	}

	// A server taken down shows as down, with the reason.
	f.pool.SetState("b", lb.StateDown, "taken down by the test")
	_, html = get(t, c, f.url)
	if want := `<tr class="down"><td class="l">b</td><td class="l">` + f.pool.Stats().Servers[1].Addr +
		`</td><td class="l">DOWN</td><td class="l">taken down by the test</td>`; !strings.Contains(html, want) {
		t.Errorf("page lacks %q:\n%s", want, html)
	}
	f.pool.SetState("a", lb.StateMaintenance, "upgrade")
	r = report(t, c, f.url)
	be = r.Backends[0]
	if be.Status != "DOWN" || be.Active != 0 || be.Servers[0].Status != "MAINT" || be.Servers[0].Reason != "upgrade" ||
		be.Servers[1].Status != "DOWN" || be.Servers[1].State != "down" {
		t.Errorf("backend after SetState: %+v", be)
	}
	_, html = get(t, c, f.url)
	if want := `Backend web: <span class="down">DOWN</span>`; !strings.Contains(html, want) {
		t.Errorf("page lacks %q", want)
	}
}

func TestHealthChecksShow(t *testing.T) {
	pool := &lb.Pool{Name: "db"}
	must(t, pool.Update([]lb.Server{{Name: "pg", Addr: "127.0.0.1:1"}}))
	pool.RecordCheck("pg", lb.CheckResult{
		Time: time.Now().Add(-3 * time.Second), Duration: 2 * time.Millisecond, Status: "L7STS", Code: 503,
		Reason: "HTTP status 503",
	})
	pool.SetHealth("pg", lb.StateDown, "HTTP status 503")
	page := &statuspage.Handler{}
	page.AddPool(pool.Name, pool)
	r := page.Report()
	s := r.Backends[0].Servers[0]
	if s.Check == nil || s.Check.Status != "L7STS" || s.Check.Code != 503 || s.Check.Passed || s.Check.Fails != 1 ||
		s.Check.Age < 3 || s.Check.Age > 60 || s.CheckFailures != 1 || s.Status != "DOWN" {
		t.Fatalf("server: %+v, check %+v", s, s.Check)
	}
	_, html := get(t, client(t), serve(t, page))
	want := regexp.MustCompile(`<td class="l">L7STS 503</td><td class="l">HTTP status 503</td><td>2.0ms</td><td>[3-9]s</td>`)
	if !want.MatchString(html) {
		t.Errorf("page lacks %s:\n%s", want, html)
	}
}

// hostile is a source whose every name tries to break out of the page.
type hostile struct{}

const (
	evilName   = `<script>alert("name")</script>`
	evilAddr   = `"><img src=x onerror=alert(1)>`
	evilReason = `</td></tr></table><script>alert('reason')</script>`
	evilFront  = `</style><script>alert(1)</script><style>`
)

func (hostile) Stats() lb.PoolStats {
	return lb.PoolStats{Name: evilName, Active: 1, Servers: []lb.ServerStats{{
		Name: evilName, Addr: evilAddr, Reason: evilReason, Weight: 1,
		Health: lb.HealthStats{Last: lb.CheckResult{Time: time.Now(), Status: evilName, Reason: evilReason}},
	}}}
}

type hostileFrontend struct{}

func (hostileFrontend) Stats() lb.FrontendStats { return lb.FrontendStats{Name: evilFront} }

func TestHostileNamesAreEscaped(t *testing.T) {
	page := &statuspage.Handler{Title: evilFront}
	page.AddPool(evilName, hostile{})
	page.AddFrontend(evilFront, hostileFrontend{})
	url := serve(t, page)
	c := client(t)
	_, html := get(t, c, url)
	for _, bad := range []string{"<script", "<img", "</table><", "</style><"} {
		if strings.Contains(html, bad) {
			t.Errorf("page contains %q:\n%s", bad, html)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;",
		"&#34;&gt;&lt;img src=x onerror=alert(1)&gt;",
		"&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;",
		"&lt;/style&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;style&gt;",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q:\n%s", want, html)
		}
	}
	r := report(t, c, url)
	if s := r.Backends[0].Servers[0]; s.Name != evilName || s.Addr != evilAddr || s.Reason != evilReason ||
		r.Frontends[0].Name != evilFront {
		t.Errorf("JSON does not give the names back: %+v", r)
	}
	_, body := get(t, c, url+"?format=json")
	if strings.Contains(body, "<") {
		t.Errorf("JSON contains '<' unescaped:\n%s", body)
	}
}

func TestHeadersAndMethods(t *testing.T) {
	page := &statuspage.Handler{}
	page.AddPool(evilName, hostile{})
	url := serve(t, page)
	c := client(t)

	resp, html := get(t, c, url)
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	// The policy allows no script and exactly the page's stylesheet.
	csp := resp.Header.Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(html)
	if style == nil {
		t.Fatalf("no style element:\n%s", html)
	}
	sum := sha256.Sum256([]byte(style[1]))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if !strings.HasPrefix(csp, "default-src 'none'; ") || !strings.Contains(csp, "style-src "+hash+";") ||
		strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q; want default-src 'none' and style-src %s", csp, hash)
	}

	req, _ := http.NewRequest(http.MethodHead, url, nil)
	head, err := c.Do(req)
	must(t, err)
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != int64(len(html)) || head.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD: %d, length %d (page %d), %s", head.StatusCode, head.ContentLength, len(html), head.Header.Get("Content-Type"))
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, url+"?format=json", strings.NewReader("x"))
		resp, err := c.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, Allow %q", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if resp, _ := get(t, c, url+"?format=xml"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=xml: %d, want 400", resp.StatusCode)
	}
}

func TestRefresh(t *testing.T) {
	for _, tc := range []struct {
		refresh time.Duration
		want    string
	}{
		{0, `<meta http-equiv="refresh" content="5">`},
		{time.Second, `<meta http-equiv="refresh" content="1">`},
		{1500 * time.Millisecond, `<meta http-equiv="refresh" content="2">`},
		{-1, ""},
	} {
		page := &statuspage.Handler{Refresh: tc.refresh}
		_, html := get(t, client(t), serve(t, page))
		got := regexp.MustCompile(`<meta http-equiv="refresh"[^>]*>`).FindString(html)
		if got != tc.want {
			t.Errorf("Refresh %v: %q, want %q", tc.refresh, got, tc.want)
		}
		if !strings.Contains(html, "No frontend.") || !strings.Contains(html, "No backend.") {
			t.Errorf("empty page:\n%s", html)
		}
	}
}

// named is a pool source of one server, named after the source.
type named string

func (n named) Stats() lb.PoolStats {
	return lb.PoolStats{Name: string(n), Servers: []lb.ServerStats{{Name: string(n) + "-1"}}}
}

func TestSourcesComeAndGo(t *testing.T) {
	page := &statuspage.Handler{}
	url := serve(t, page)
	c := client(t)
	page.AddPool("a", named("a"))
	page.AddPool("b", named("b"))
	page.AddFrontend("f", hostileFrontend{})
	if r := page.Report(); len(r.Backends) != 2 || r.Backends[0].Name != "a" || r.Backends[1].Name != "b" || len(r.Frontends) != 1 {
		t.Fatalf("report: %+v", r)
	}
	// A pool added again under its name takes the old one's place.
	page.AddPool("a", named("a2"))
	if r := page.Report(); len(r.Backends) != 2 || r.Backends[0].Name != "a" || r.Backends[0].Servers[0].Name != "a2-1" {
		t.Fatalf("report after replacing a: %+v", r)
	}

	// Sources come and go while the page is read.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	for i := range 50 {
		name := fmt.Sprint("tmp", i)
		page.AddPool(name, named(name))
		page.RemovePool(name)
		page.RemovePool(name) // does nothing
		page.AddFrontend(name, hostileFrontend{})
		page.RemoveFrontend(name)
	}
	close(stop)
	wg.Wait()

	page.RemoveFrontend("f")
	page.RemovePool("a")
	if r := page.Report(); len(r.Backends) != 1 || r.Backends[0].Name != "b" || len(r.Frontends) != 0 {
		t.Fatalf("report after removals: %+v", r)
	}
	if _, html := get(t, c, url); strings.Contains(html, "a2-1") || !strings.Contains(html, "b-1") {
		t.Errorf("page after removals:\n%s", html)
	}
}
