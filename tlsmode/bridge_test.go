package tlsmode_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// TestBridgeL4 terminates the client's TLS and opens a new session to the
// server: verified against the configured CA, refused when the server's
// certificate is not trusted, accepted then only when verification is off.
func TestBridgeL4(t *testing.T) {
	testutil.CheckLeaks(t)
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	trusted := startTLSNameServer(t, "trusted", ca.ServerConfig(t, "127.0.0.1"))
	untrusted := startTLSNameServer(t, "untrusted", other.ServerConfig(t, "127.0.0.1"))
	named := startTLSNameServer(t, "named", ca.ServerConfig(t, "app.internal"))
	bySNI := startTLSNameServer(t, "by-sni", ca.ServerConfig(t, "front.test"))
	front := tlsmode.Config{Certificates: storeOf(t, ca.Leaf(t, "front.test"))}.ServerConfig()

	tests := []struct {
		name     string
		server   *tlsNameServer
		upstream tlsmode.Upstream
		ok       bool
	}{
		{"trusted CA, name from address", trusted, tlsmode.Upstream{RootCAs: ca.Pool()}, true},
		{"untrusted refused", untrusted, tlsmode.Upstream{RootCAs: ca.Pool()}, false},
		{"untrusted with system roots refused", untrusted, tlsmode.Upstream{}, false},
		{"verification off", untrusted, tlsmode.Upstream{InsecureSkipVerify: true}, true},
		{"server name setting", named, tlsmode.Upstream{RootCAs: ca.Pool(), ServerName: "app.internal"}, true},
		{"wrong server name refused", named, tlsmode.Upstream{RootCAs: ca.Pool()}, false},
		{"client SNI", bySNI, tlsmode.Upstream{RootCAs: ca.Pool(), UseClientSNI: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pool(t, tt.server.Addr)
			tt.upstream.Bridge(p)
			addr := serveL4(t, tlsmode.Offload(front, p))
			got, st, err := greeting(t, addr, ca.ClientConfig("front.test"))
			if !tt.ok {
				if err == nil {
					t.Fatalf("reached %q through an unverified server", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.server.name() || st.PeerCertificates[0].Subject.CommonName != "front.test" {
				t.Errorf("reached %q, client saw %q", got, st.PeerCertificates[0].Subject.CommonName)
			}
			// A second connection resumes the session with the server.
			if _, _, err := greeting(t, addr, ca.ClientConfig("front.test")); err != nil {
				t.Fatal(err)
			}
			var resumed bool
			for range 2 {
				resumed = (<-tt.server.states).DidResume
			}
			if !resumed {
				t.Error("the second server connection did not resume the session")
			}
		})
	}
}

// TestBridgeHTTP re-encrypts HTTP to the servers, HTTP/1.1 by default and
// HTTP/2 when asked for and offered, and refuses untrusted servers with 502
// unless verification is off.
func TestBridgeHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	backendHandler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend-Proto", r.Proto)
			w.Header().Set("X-Backend-TLS", map[bool]string{true: "yes", false: "no"}[r.TLS != nil])
			w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
			w.Header().Set("X-Seen-SNI", r.TLS.ServerName)
			io.WriteString(w, name)
		})
	}
	trusted := serveHTTP(t, ca.ServerConfig(t, "127.0.0.1"), backendHandler("trusted"))
	untrusted := serveHTTP(t, other.ServerConfig(t, "127.0.0.1"), backendHandler("untrusted"))
	h1only := ca.ServerConfig(t, "127.0.0.1")
	h1only.NextProtos = []string{"http/1.1"}
	h1 := serveHTTP(t, h1only, backendHandler("h1"))
	bySNI := serveHTTP(t, ca.ServerConfig(t, "front.test"), backendHandler("by-sni"))
	front := tlsmode.Config{Certificates: storeOf(t, ca.Leaf(t, "front.test", "127.0.0.1"))}.HTTPConfig()

	tests := []struct {
		name      string
		sni       string
		server    string
		upstream  tlsmode.Upstream
		status    int
		wantProto string
	}{
		{"trusted, h1 by default", "front.test", trusted, tlsmode.Upstream{RootCAs: ca.Pool()}, 200, "HTTP/1.1"},
		{"trusted, h2 asked for", "front.test", trusted, tlsmode.Upstream{RootCAs: ca.Pool(), HTTP2: true}, 200, "HTTP/2.0"},
		{"h2 asked for, http/1.1 server", "front.test", h1, tlsmode.Upstream{RootCAs: ca.Pool(), HTTP2: true}, 200, "HTTP/1.1"},
		{"untrusted refused", "front.test", untrusted, tlsmode.Upstream{RootCAs: ca.Pool()}, 502, ""},
		{"verification off", "front.test", untrusted, tlsmode.Upstream{InsecureSkipVerify: true, HTTP2: true}, 200, "HTTP/2.0"},
		{"client SNI", "front.test", bySNI, tlsmode.Upstream{RootCAs: ca.Pool(), UseClientSNI: true}, 200, "HTTP/1.1"},
		{"client SNI, h2", "front.test", bySNI, tlsmode.Upstream{RootCAs: ca.Pool(), UseClientSNI: true, HTTP2: true}, 200, "HTTP/2.0"},
		{"client SNI missing: address refused", "127.0.0.1", bySNI, tlsmode.Upstream{RootCAs: ca.Pool(), UseClientSNI: true}, 502, ""},
		{"address without client SNI", "front.test", bySNI, tlsmode.Upstream{RootCAs: ca.Pool()}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := &lb.ReverseProxy{Pool: pool(t, tt.server)}
			tt.upstream.BridgeHTTP(rp)
			addr := serveHTTP(t, front, rp)
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig(tt.sni), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if got := resp.Header.Get("X-Backend-Proto"); got != tt.wantProto || resp.Header.Get("X-Backend-TLS") != "yes" || resp.Header.Get("X-Seen-Proto") != "https" {
				t.Errorf("server saw %s, TLS %s, X-Forwarded-Proto %q", got, resp.Header.Get("X-Backend-TLS"), resp.Header.Get("X-Seen-Proto"))
			}
			if tt.upstream.UseClientSNI && resp.Header.Get("X-Seen-SNI") != tt.sni {
				t.Errorf("server got SNI %q, want the client's %q", resp.Header.Get("X-Seen-SNI"), tt.sni)
			}
		})
	}
}
