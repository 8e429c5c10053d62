package lb_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestFailoverHost checks that a pool with no server up sends its
// requests to the failover host, with the failover host's name as Host,
// and to its servers again once one is up.
func TestFailoverHost(t *testing.T) {
	testutil.CheckLeaks(t)
	main := testutil.HTTPBackend(t, "main")
	site := testutil.HTTPBackend(t, "site")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: main.Addr}}))
	failover, err := lb.NewFailoverHost(site.Addr, nil, nil)
	must(t, err)
	defer failover.CloseIdleConnections()
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool, Fallback: failover}, time.Second)
	c := client()
	defer c.CloseIdleConnections()

	if code, body, _ := get(t, c, url+"/page?x=1"); code != 200 || body != "main\n" {
		t.Fatalf("with a server up: %d %q", code, body)
	}
	pool.SetState("a", lb.StateDown, "test")
	code, body, _ := get(t, c, url+"/page?x=1")
	if code != 200 || body != "site\n" {
		t.Fatalf("with no server up: %d %q, want the failover host's answer", code, body)
	}
	r, ok := site.LastRequest()
	if !ok {
		t.Fatal("the failover host got no request")
	}
	if r.Host != site.Addr || r.URI != "/page?x=1" {
		t.Errorf("the failover host got Host %q, URI %q; want %q, /page?x=1", r.Host, r.URI, site.Addr)
	}
	if got, want := r.Header.Get("X-Forwarded-Host"), strings.TrimPrefix(url, "http://"); got != want {
		t.Errorf("X-Forwarded-Host %q, want the client's Host %q", got, want)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want 127.0.0.1", got)
	}
	pool.SetState("a", lb.StateUp, "test")
	if code, body, _ := get(t, c, url+"/"); code != 200 || body != "main\n" {
		t.Fatalf("with the server up again: %d %q", code, body)
	}
	if n := site.Requests(); n != 1 {
		t.Errorf("the failover host got %d requests, want 1", n)
	}
}

// TestFailoverHostDown checks that a failover host that cannot be
// reached gets the client a 503, as no server at all would.
func TestFailoverHostDown(t *testing.T) {
	testutil.CheckLeaks(t)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update(servers("127.0.0.1:1")))
	pool.SetState("127.0.0.1:1", lb.StateDown, "test")
	failover, err := lb.NewFailoverHost("http://"+testutil.ClosedAddr(t), nil, nil)
	must(t, err)
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool, Fallback: failover}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if code, body, _ := get(t, c, url+"/"); code != 503 {
		t.Fatalf("status %d (%q), want 503", code, body)
	}
}

// TestFailoverHostHTTPS checks an https:// failover host: TLS with the
// host's name as SNI, verified with the given configuration.
func TestFailoverHostHTTPS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	ln, seen := startNamedTLS(t, ca, "localhost", "secure site\n", 1)
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update(servers("127.0.0.1:1")))
	pool.SetState("127.0.0.1:1", lb.StateDown, "test")
	// localhost resolves to the loopback address the server listens on.
	failover, err := lb.NewFailoverHost("https://localhost:"+port, &tls.Config{RootCAs: ca.Pool()}, nil)
	must(t, err)
	defer failover.CloseIdleConnections()
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool, Fallback: failover}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if code, body, _ := get(t, c, url+"/"); code != 200 || body != "secure site\n" {
		t.Fatalf("status %d %q", code, body)
	}
	if got := <-seen; got != [2]string{"localhost", "localhost:" + port} {
		t.Errorf("SNI and Host %q; want localhost, localhost:%s", got, port)
	}
}

func TestNewFailoverHostForms(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"static.example.com", "http://static.example.com"},
		{"127.0.0.1:8081", "http://127.0.0.1:8081"},
		{"https://b.s3-website.fr-par.scw.cloud", "https://b.s3-website.fr-par.scw.cloud"},
		{"http://[::1]:80/", "http://[::1]:80"},
	} {
		f, err := lb.NewFailoverHost(tt.in, nil, nil)
		if err != nil {
			t.Errorf("NewFailoverHost(%q): %v", tt.in, err)
			continue
		}
		if got := f.URL.String(); got != tt.want {
			t.Errorf("NewFailoverHost(%q).URL = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://x/path", "http://u:p@x", "x?q=1"} {
		if _, err := lb.NewFailoverHost(bad, nil, nil); err == nil {
			t.Errorf("NewFailoverHost(%q) accepted", bad)
		}
	}
}
