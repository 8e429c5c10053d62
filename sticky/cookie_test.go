package sticky_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

var (
	key1 = []byte("0123456789abcdef0123456789abcdef")
	key2 = []byte("fedcba9876543210fedcba9876543210")
)

// cookieStack is a pool of three test backends behind a ReverseProxy with
// cookie stickiness, served on loopback.
type cookieStack struct {
	pool     *lb.Pool
	ck       *sticky.Cookie
	backends map[string]*testutil.Backend
	url      string
	moves    atomic.Int64
}

func newCookieStack(t *testing.T, n int) *cookieStack {
	t.Helper()
	st := &cookieStack{backends: map[string]*testutil.Backend{}}
	st.ck = &sticky.Cookie{
		Cookie:      http.Cookie{Name: "SRV", HttpOnly: true, SameSite: http.SameSiteLaxMode},
		Keys:        []sticky.Key{{Secret: key1}},
		MovedHeader: "X-Sticky-Moved",
		OnMove:      func(lb.PickInfo, string, string) { st.moves.Add(1) },
	}
	must(t, st.ck.Validate())
	st.pool = &lb.Pool{Name: "web", Balancer: &balancer.RoundRobin{}, Affinity: st.ck}
	var servers []lb.Server
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		b := testutil.HTTPBackend(t, name)
		st.backends[name] = b
		servers = append(servers, lb.Server{Name: name, Addr: b.Addr})
	}
	must(t, st.pool.Update(servers))
	proxy := &lb.ReverseProxy{Pool: st.pool}
	st.url = "http://" + serveHTTP(t, &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}, listen(t), proxy)
	return st
}

// do sends a GET and returns the backend that answered and the response
// header.
func do(t testing.TB, c *http.Client, url string, cookies ...string) (string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	must(t, err)
	for _, ck := range cookies {
		req.Header.Add("Cookie", ck)
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Backend"), resp.Header
}

// TestCookieThousandClients: 1000 clients with cookie jars keep their server
// over 10 requests; stopping one server moves only its clients, which then
// stick to their new server, even once the old one is back.
func TestCookieThousandClients(t *testing.T) {
	testutil.CheckLeaks(t)
	const clients, requests, workers = 1000, 10, 8
	st := newCookieStack(t, 4)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()

	jars := make([]*http.Client, clients)
	for i := range jars {
		jar, err := cookiejar.New(nil)
		must(t, err)
		jars[i] = &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}
	}
	// forEach runs f for every client on a bounded set of workers.
	forEach := func(f func(i int, c *http.Client)) {
		t.Helper()
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= clients || t.Failed() {
						return
					}
					f(i, jars[i])
				}
			}()
		}
		wg.Wait()
	}

	home := make([]string, clients)
	var mu sync.Mutex
	perServer := map[string]int{}
	forEach(func(i int, c *http.Client) {
		for r := range requests {
			got, h := do(t, c, st.url+"/")
			if r == 0 {
				home[i] = got
				if h.Get("Set-Cookie") == "" {
					t.Errorf("client %d: first response sets no cookie", i)
				}
			} else if got != home[i] {
				t.Errorf("client %d request %d: server %s, pinned to %s", i, r, got, home[i])
				return
			} else if h.Get("Set-Cookie") != "" {
				t.Errorf("client %d request %d: cookie set again", i, r)
			}
		}
		mu.Lock()
		perServer[home[i]]++
		mu.Unlock()
	})
	if t.Failed() {
		t.FailNow()
	}
	if len(perServer) != 4 || perServer["s1"] != clients/4 {
		t.Fatalf("clients per server = %v, want %d each (round robin)", perServer, clients/4)
	}
	if st.moves.Load() != 0 {
		t.Fatalf("%d moves before any server stopped", st.moves.Load())
	}

	// Stop s1: only its clients move, each once, and they stick.
	if !st.pool.SetState("s1", lb.StateDown, "stopped by test") {
		t.Fatal("SetState s1")
	}
	moved := make([]string, clients)
	forEach(func(i int, c *http.Client) {
		for r := range 3 {
			got, h := do(t, c, st.url+"/")
			wasMoved := h.Get("X-Sticky-Moved") == "1"
			switch {
			case home[i] != "s1" && (got != home[i] || wasMoved || h.Get("Set-Cookie") != ""):
				t.Errorf("client %d of %s: went to %s (moved header %v)", i, home[i], got, wasMoved)
			case home[i] == "s1" && got == "s1":
				t.Errorf("client %d: still on stopped s1", i)
			case home[i] == "s1" && r == 0:
				moved[i] = got
				if !wasMoved || h.Get("Set-Cookie") == "" {
					t.Errorf("client %d: moved to %s without moved header and new cookie", i, got)
				}
			case home[i] == "s1" && (got != moved[i] || wasMoved):
				t.Errorf("client %d request %d: %s after moving to %s", i, r, got, moved[i])
			}
		}
	})
	if got := st.moves.Load(); got != int64(perServer["s1"]) {
		t.Fatalf("OnMove called %d times, want %d", got, perServer["s1"])
	}

	// s1 comes back: nobody moves again.
	st.pool.SetState("s1", lb.StateUp, "")
	forEach(func(i int, c *http.Client) {
		want := home[i]
		if want == "s1" {
			want = moved[i]
		}
		if got, _ := do(t, c, st.url+"/"); got != want {
			t.Errorf("client %d: %s after s1 came back, want %s", i, got, want)
		}
	})
	if st.backends["s1"].Requests() != int64(perServer["s1"]*requests) {
		t.Fatalf("s1 served %d requests, want %d", st.backends["s1"].Requests(), perServer["s1"]*requests)
	}
}

// TestCookieHTTP2 checks stickiness through HTTP/2 frontends: over TLS
// (ALPN h2, certificates made for the test) and cleartext (h2c).
func TestCookieHTTP2(t *testing.T) {
	testutil.CheckLeaks(t)
	st := newCookieStack(t, 3)
	proxy := &lb.ReverseProxy{Pool: st.pool}
	ca := testutil.NewCA(t)

	tlsSrv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, TLSConfig: ca.ServerConfig(t, "lb.test")}
	tlsSrv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
	tlsAddr := serveHTTP(t, tlsSrv, tls.NewListener(listen(t), tlsSrv.TLSConfig), proxy)
	tlsTr := &http.Transport{TLSClientConfig: ca.ClientConfig("lb.test"), ForceAttemptHTTP2: true}
	defer tlsTr.CloseIdleConnections()

	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	var both http.Protocols
	both.SetHTTP1(true)
	both.SetUnencryptedHTTP2(true)
	h2cSrv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, Protocols: &both}
	h2cAddr := serveHTTP(t, h2cSrv, listen(t), proxy)
	h2cTr := &http.Transport{Protocols: &h2c}
	defer h2cTr.CloseIdleConnections()

	for _, tc := range []struct {
		name, url string
		tr        *http.Transport
	}{
		{"TLS ALPN h2", "https://" + tlsAddr + "/", tlsTr},
		{"h2c", "http://" + h2cAddr + "/", h2cTr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for i := range 6 {
				jar, err := cookiejar.New(nil)
				must(t, err)
				c := &http.Client{Jar: jar, Transport: tc.tr, Timeout: 10 * time.Second}
				first := ""
				for r := range 4 {
					resp, err := c.Get(tc.url)
					must(t, err)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.ProtoMajor != 2 {
						t.Fatalf("client %d: %s, want HTTP/2", i, resp.Proto)
					}
					got := resp.Header.Get("X-Backend")
					if r == 0 {
						first = got
						seen[got] = true
					} else if got != first {
						t.Fatalf("client %d request %d: %s, pinned to %s", i, r, got, first)
					}
				}
			}
			if len(seen) != 3 {
				t.Fatalf("6 clients pinned to %v, want all 3 servers", seen)
			}
		})
	}
}
