package lb_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestServerHost checks that ServerHost replaces the Host header sent to
// the servers, and that X-Forwarded-Host keeps the client's.
func TestServerHost(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool, ServerHost: "bucket.s3-website.test"}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if code, body, _ := get(t, c, url+"/index.html"); code != 200 || body != "a\n" {
		t.Fatalf("status %d %q", code, body)
	}
	r, ok := b.LastRequest()
	if !ok {
		t.Fatal("the server got no request")
	}
	if r.Host != "bucket.s3-website.test" {
		t.Errorf("Host %q, want bucket.s3-website.test", r.Host)
	}
	if got, want := r.Header.Get("X-Forwarded-Host"), strings.TrimPrefix(url, "http://"); got != want {
		t.Errorf("X-Forwarded-Host %q, want the client's Host %q", got, want)
	}
}

// TestServerHostTLS checks that with Scheme "https" ServerHost is also the
// TLS name sent and verified: the server's certificate names only that
// host, not its address.
func TestServerHostTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	ln, seen := startNamedTLS(t, ca, "site.test", "site\n", 4)
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: ln.Addr().String()}}))
	c := client()
	defer c.CloseIdleConnections()

	// Without ServerHost the name verified is the address, which the
	// certificate does not cover.
	plain := &lb.ReverseProxy{Pool: pool, Scheme: "https", TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	url, _ := startL7(t, plain, time.Second)
	if code, body, _ := get(t, c, url+"/"); code != 502 {
		t.Fatalf("without ServerHost: status %d %q, want 502", code, body)
	}

	named := &lb.ReverseProxy{Pool: pool, Scheme: "https", TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		ServerHost: "site.test:8443"}
	url, _ = startL7(t, named, time.Second)
	if code, body, _ := get(t, c, url+"/"); code != 200 || body != "site\n" {
		t.Fatalf("with ServerHost: status %d %q", code, body)
	}
	if got := <-seen; got != [2]string{"site.test", "site.test:8443"} {
		t.Errorf("SNI and Host %q, want site.test, site.test:8443", got)
	}
}

// startNamedTLS serves HTTPS on 127.0.0.1 with a certificate of ca for
// name, answering body; each request's SNI and Host go to the returned
// channel (of size n, extra ones dropped).
func startNamedTLS(t *testing.T, ca *testutil.CA, name, body string, n int) (net.Listener, <-chan [2]string) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, name))
	must(t, err)
	seen := make(chan [2]string, n)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- [2]string{r.TLS.ServerName, r.Host}:
		default:
		}
		w.Write([]byte(body))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln, seen
}
