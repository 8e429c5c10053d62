package config_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestRuntimeBuildsEveryKind builds one document with every kind of
// frontend and checks traffic through each: HTTP with ACLs (deny,
// redirect), Host and path routes and a sticky cookie; HTTPS offload with
// two certificates chosen by SNI; TCP with a source-IP table; TLS
// passthrough with SNI routes; and bridging to HTTPS servers with the
// backend's host as SNI and Host.
func TestRuntimeBuildsEveryKind(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	web := httpServers(t, "web", nil, "127.0.0.2", "127.0.0.3")
	api := httpServers(t, "api", nil, "127.0.0.4")
	tcp := tcpServers(t, "tcp", nil, "127.0.0.5", "127.0.0.6")
	tlsA := tcpServers(t, "a", ca.ServerConfig(t, "a.test"), "127.0.0.7")
	tlsB := tcpServers(t, "b", ca.ServerConfig(t, "b.test"), "127.0.0.8")
	secure := httpServers(t, "secure", ca.ServerConfig(t, "secure.test"), "127.0.0.9")
	pHTTP, pHTTPS, pTCP, pSNI, pBridge := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)

	doc := fmt.Sprintf(`{
	  "lb": {"id": "lb-1"},
	  "backends": [
	    {"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s,
	     "sticky_sessions": "cookie", "sticky_sessions_cookie_name": "SRV"},
	    {"id": "api", "forward_protocol": "http", "forward_port": %d, "pool": %s},
	    {"id": "tcp", "forward_protocol": "tcp", "forward_port": %d, "pool": %s, "sticky_sessions": "table"},
	    {"id": "tls-a", "forward_protocol": "tcp", "forward_port": %d, "pool": %s},
	    {"id": "tls-b", "forward_protocol": "tcp", "forward_port": %d, "pool": %s},
	    {"id": "secure", "forward_protocol": "http", "forward_port": %d, "pool": %s,
	     "ssl_bridging": true, "host": "secure.test"}
	  ],
	  "frontends": [
	    {"id": "f-http", "inbound_port": %d, "backend_id": "web"},
	    {"id": "f-https", "inbound_port": %d, "backend_id": "web", "certificate_ids": ["one", "two"]},
	    {"id": "f-tcp", "inbound_port": %d, "backend_id": "tcp"},
	    {"id": "f-sni", "inbound_port": %d, "backend_id": "tls-a"},
	    {"id": "f-bridge", "inbound_port": %d, "backend_id": "secure"}
	  ],
	  "acls": [
	    {"id": "deny-admin", "frontend_id": "f-http", "index": 2,
	     "match": {"http_filter": "path_begin", "http_filter_value": ["/admin"]}, "action": {"type": "deny"}},
	    {"id": "redirect-old", "frontend_id": "f-http", "index": 1,
	     "match": {"http_filter": "path_begin", "http_filter_value": ["/old"]},
	     "action": {"type": "redirect", "redirect": {"type": "location", "target": "https://{{host}}/new", "code": 301}}},
	    {"id": "allow-admin-header", "frontend_id": "f-http", "index": 0,
	     "match": {"http_filter": "http_header_match", "http_filter_option": "X-Admin", "http_filter_value": ["yes"]},
	     "action": {"type": "allow"}}
	  ],
	  "routes": [
	    {"id": "r-host", "frontend_id": "f-http", "backend_id": "api", "match": {"host_header": "api.test", "match_subdomains": true}},
	    {"id": "r-path", "frontend_id": "f-http", "backend_id": "api", "match": {"path_begin": "/api/"}},
	    {"id": "r-sni", "frontend_id": "f-sni", "backend_id": "tls-b", "match": {"sni": "b.test"}}
	  ],
	  "certificates": [
	    {"id": "one", "certificate_chain": %s},
	    {"id": "two", "certificate_chain": %s}
	  ]
	}`, web.port, web.pool(), api.port, api.pool(), tcp.port, tcp.pool(), tlsA.port, tlsA.pool(), tlsB.port, tlsB.pool(),
		secure.port, secure.pool(), pHTTP, pHTTPS, pTCP, pSNI, pBridge,
		jsonString(chainPEM(t, ca.Leaf(t, "one.test"))), jsonString(chainPEM(t, ca.Leaf(t, "two.test"))))

	rt := newRuntime(t, config.RuntimeOptions{TLSClientRoots: ca.Pool()})
	apply(t, rt, doc)
	client := newClient(t, nil)
	base := fmt.Sprintf("http://127.0.0.1:%d", pHTTP)

	t.Run("balanced and sticky", func(t *testing.T) {
		seen := map[string]bool{}
		for range 4 {
			_, body, _ := get(t, client, base+"/")
			seen[body] = true
		}
		if !seen["web 127.0.0.2"] || !seen["web 127.0.0.3"] {
			t.Fatalf("round robin reached %v, want both web servers", seen)
		}
		_, first, h := get(t, client, base+"/")
		cookie := ""
		for _, c := range (&http.Response{Header: h}).Cookies() {
			if c.Name == "SRV" {
				cookie = c.Name + "=" + c.Value
			}
		}
		if cookie == "" || strings.Contains(cookie, "127.0.0") {
			t.Fatalf("sticky cookie %q: want an opaque SRV cookie", cookie)
		}
		for range 6 {
			if _, body, _ := get(t, client, base+"/", "Cookie", cookie); body != first {
				t.Fatalf("with its cookie a client reached %q, then %q", first, body)
			}
		}
	})
	t.Run("routes", func(t *testing.T) {
		for _, c := range []struct{ path, host, want string }{
			{"/", "api.test", "api 127.0.0.4"},
			{"/", "v1.api.test", "api 127.0.0.4"},
			{"/api/x", "www.test", "api 127.0.0.4"},
			{"/apix", "www.test", "web"},
		} {
			if _, body, _ := get(t, client, base+c.path, "Host", c.host); !strings.HasPrefix(body, c.want) {
				t.Errorf("%s%s reached %q, want %q", c.host, c.path, body, c.want)
			}
		}
	})
	t.Run("acls", func(t *testing.T) {
		if code, _, _ := get(t, client, base+"/admin/x"); code != http.StatusForbidden {
			t.Errorf("/admin: %d, want 403", code)
		}
		if code, body, _ := get(t, client, base+"/admin/x", "X-Admin", "yes"); code != 200 || !strings.HasPrefix(body, "web") {
			t.Errorf("/admin with the allowed header (index 0 first): %d %q", code, body)
		}
		code, _, h := get(t, client, base+"/old/page", "Host", "www.test")
		if code != http.StatusMovedPermanently || h.Get("Location") != "https://www.test/new" {
			t.Errorf("/old: %d to %q, want 301 to https://www.test/new", code, h.Get("Location"))
		}
	})
	t.Run("https offload by SNI", func(t *testing.T) {
		for _, name := range []string{"one.test", "two.test"} {
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig(name), ForceAttemptHTTP2: true}
			c := newClient(t, tr)
			resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", pHTTPS))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			resp.Body.Close()
			if resp.TLS.PeerCertificates[0].DNSNames[0] != name || resp.ProtoMajor != 2 || resp.Header.Get("X-Proto-Seen") != "https" {
				t.Errorf("%s: certificate for %v over HTTP/%d, X-Forwarded-Proto %q", name,
					resp.TLS.PeerCertificates[0].DNSNames, resp.ProtoMajor, resp.Header.Get("X-Proto-Seen"))
			}
		}
	})
	t.Run("tcp table", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", pTCP)
		first, err := greet(addr, nil)
		if err != nil || !strings.HasPrefix(first, "tcp 127.0.0.") {
			t.Fatalf("tcp: %q, %v", first, err)
		}
		for range 5 {
			if got, err := greet(addr, nil); got != first {
				t.Fatalf("a client pinned by the table reached %q, then %q (%v)", first, got, err)
			}
		}
	})
	t.Run("sni passthrough", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", pSNI)
		for name, want := range map[string]string{"a.test": "a 127.0.0.7", "b.test": "b 127.0.0.8"} {
			if got, err := greet(addr, ca.ClientConfig(name)); got != want {
				t.Errorf("SNI %s reached %q (%v), want %q", name, got, err, want)
			}
		}
	})
	t.Run("bridging", func(t *testing.T) {
		_, body, h := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", pBridge))
		if body != "secure 127.0.0.9" || h.Get("X-SNI-Seen") != "secure.test" || h.Get("X-Host-Seen") != "secure.test" {
			t.Errorf("bridged to %q with SNI %q and Host %q, want secure.test for both", body, h.Get("X-SNI-Seen"), h.Get("X-Host-Seen"))
		}
	})
}

// TestRuntimeBridgingVerifies checks that bridging verifies the servers'
// certificates unless ignore_ssl_server_verify.
func TestRuntimeBridgingVerifies(t *testing.T) {
	ca := testutil.NewCA(t)
	secure := httpServers(t, "secure", ca.ServerConfig(t, "other.test"), "127.0.0.9")
	port := freePort(t)
	doc := func(ignore bool) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s,
		    "ssl_bridging": true, "ignore_ssl_server_verify": %t, "host": "secure.test", "max_retries": 0}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, secure.port, secure.pool(), ignore, port)
	}
	rt := newRuntime(t, config.RuntimeOptions{TLSClientRoots: ca.Pool()})
	client := newClient(t, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	apply(t, rt, doc(false))
	// 502 from the failed handshake, or 503 once the check (which
	// verifies alike) took the server down.
	if code, _, _ := get(t, client, url); code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
		t.Errorf("a server whose certificate names another host: %d, want 502 or 503", code)
	}
	apply(t, rt, doc(true))
	// The rebuilt pool keeps the server down, if the old one had it down,
	// until a check with the new settings passes.
	testutil.Eventually(t, "the server up with ignore_ssl_server_verify", func() bool {
		st, _ := rt.ServerStats("b")
		return len(st) == 1 && st[0].ServerState == "running"
	})
	if code, body, _ := get(t, client, url); code != 200 || body != "secure 127.0.0.9" {
		t.Errorf("with ignore_ssl_server_verify: %d %q", code, body)
	}
}

// TestRuntimeRollback applies a document whose new frontend's port is in
// use: Apply fails, the running frontends keep serving, and the other new
// port of the same document is released.
func TestRuntimeRollback(t *testing.T) {
	testutil.CheckLeaks(t)
	web := httpServers(t, "web", nil, "127.0.0.2")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	p1, p2 := freePort(t), freePort(t)
	one := fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [{"id": "f1", "inbound_port": %d, "backend_id": "b"}]}`, web.port, web.pool(), p1)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, one)
	bad := fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.3"]}],
	  "frontends": [{"id": "f1", "inbound_port": %d, "backend_id": "b"},
	    {"id": "f2", "inbound_port": %d, "backend_id": "b"},
	    {"id": "f3", "inbound_port": %d, "backend_id": "b"}]}`, web.port, p1, p2, busyPort)
	if err := rt.Apply(context.Background(), load(t, bad)); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Apply with a port in use: %v", err)
	}
	client := newClient(t, nil)
	if code, body, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", p1)); code != 200 || body != "web 127.0.0.2" {
		t.Errorf("after the failed Apply: %d %q, want the old pool's server", code, body)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p2))
	if err != nil {
		t.Fatalf("the port bound by the failed Apply was not released: %v", err)
	}
	ln.Close()
	if addrs := rt.Addrs(int32(p2)); addrs != nil {
		t.Errorf("a frontend on port %d after the failed Apply: %v", p2, addrs)
	}
}

// TestRuntimeLetsEncrypt obtains a frontend's Let's Encrypt certificate
// from Pebble, over TLS-ALPN-01 on the frontend itself or over HTTP-01 on
// a plain HTTP frontend, serves it, and fills the certificate's read-only
// fields.
func TestRuntimeLetsEncrypt(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) { testLetsEncrypt(t, challenge) })
	}
}

func testLetsEncrypt(t *testing.T, challenge string) {
	web := httpServers(t, "web", nil, "127.0.0.2")
	port, plain := freePort(t), freePort(t)
	tlsPort := port
	if challenge == "http-01" {
		_, p, _ := net.SplitHostPort(testutil.ClosedAddr(t)) // TLS-ALPN-01 cannot succeed
		tlsPort, _ = strconv.Atoi(p)
	}
	pb := testutil.StartPebble(t, plain, tlsPort)
	rt := newRuntime(t, config.RuntimeOptions{ACME: config.ACMEOptions{DirectoryURL: pb.DirectoryURL, HTTPClient: pb.Client, CacheDir: t.TempDir()}})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b", "certificate_ids": ["le"]},
	    {"id": "plain", "inbound_port": %d, "backend_id": "b"}],
	  "certificates": [{"id": "le", "letsencrypt": {"common_name": "acme.test", "subject_alternative_name": ["www.acme.test"]}}]}`,
		web.port, web.pool(), port, plain))
	if c, ok := rt.Certificate("le"); !ok || c.Status == config.CertificateReady {
		t.Fatalf("before issuance: %+v, %v", c, ok)
	}
	deadline := time.Now().Add(60 * time.Second)
	var crt config.Certificate
	for {
		crt, _ = rt.Certificate("le")
		if crt.Status == config.CertificateReady || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // issuance has no event to wait for
	}
	if crt.Status != config.CertificateReady || crt.CommonName != "acme.test" || crt.Fingerprint == "" || crt.NotValidAfter == nil {
		t.Fatalf("certificate after issuance: %+v", crt)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "www.acme.test", RootCAs: pb.Roots}}
	code, body, _ := get(t, newClient(t, tr), fmt.Sprintf("https://127.0.0.1:%d/", port))
	if code != 200 || body != "web 127.0.0.2" {
		t.Errorf("through the obtained certificate: %d %q", code, body)
	}
}

// TestRuntimeLetsEncryptTwoHTTP01 obtains two Let's Encrypt certificates
// over HTTP-01 on one plain HTTP frontend: each challenge reaches the
// ACME client of the certificate that names its host.
func TestRuntimeLetsEncryptTwoHTTP01(t *testing.T) {
	web := httpServers(t, "web", nil, "127.0.0.2")
	port, plain := freePort(t), freePort(t)
	_, p, _ := net.SplitHostPort(testutil.ClosedAddr(t)) // TLS-ALPN-01 cannot succeed
	tlsPort, _ := strconv.Atoi(p)
	pb := testutil.StartPebble(t, plain, tlsPort)
	rt := newRuntime(t, config.RuntimeOptions{ACME: config.ACMEOptions{DirectoryURL: pb.DirectoryURL, HTTPClient: pb.Client, CacheDir: t.TempDir()}})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b", "certificate_ids": ["one", "two"]},
	    {"id": "plain", "inbound_port": %d, "backend_id": "b"}],
	  "certificates": [{"id": "one", "letsencrypt": {"common_name": "one.test"}},
	    {"id": "two", "letsencrypt": {"common_name": "two.test"}}]}`,
		web.port, web.pool(), port, plain))
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range []string{"one", "two"} {
		var crt config.Certificate
		for {
			crt, _ = rt.Certificate(id)
			if crt.Status == config.CertificateReady || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // issuance has no event to wait for
		}
		if crt.Status != config.CertificateReady || crt.CommonName != id+".test" {
			t.Fatalf("certificate %q after issuance: %+v", id, crt)
		}
	}
	for _, name := range []string{"one.test", "two.test"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: pb.Roots}}
		code, body, _ := get(t, newClient(t, tr), fmt.Sprintf("https://127.0.0.1:%d/", port))
		if code != 200 || body != "web 127.0.0.2" {
			t.Errorf("%s through the obtained certificate: %d %q", name, code, body)
		}
	}
	// A request on the plain frontend outside the challenges reaches the
	// backend.
	code, body, _ := get(t, newClient(t, nil), fmt.Sprintf("http://127.0.0.1:%d/", plain))
	if code != 200 || body != "web 127.0.0.2" {
		t.Errorf("plain frontend: %d %q", code, body)
	}
}
