package tlsmode_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

func storeOf(t *testing.T, certs ...tls.Certificate) *tlsmode.Store {
	t.Helper()
	s := &tlsmode.Store{}
	for _, c := range certs {
		if err := s.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestOffloadL4 terminates TLS at the frontend: the server gets plain
// bytes, and the client's certificate name is in ConnInfo under mTLS.
func TestOffloadL4(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	backend := testutil.NameServer(t, "plain")
	p := pool(t, backend.Addr)
	tests := []struct {
		name       string
		clientAuth tls.ClientAuthType
		clientCert bool
		wantCN     string
		wantErr    bool
	}{
		{"no client certificate", tls.NoClientCert, false, "", false},
		{"mtls", tls.RequireAndVerifyClientCert, true, "client-7", false},
		{"mtls without certificate refused", tls.RequireAndVerifyClientCert, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var cn, sni string
			var hadTLS bool
			cfg := tlsmode.Config{Certificates: storeOf(t, ca.Leaf(t, "lb.test")), ClientAuth: tt.clientAuth, ClientCAs: ca.Pool()}
			addr := serveL4(t, tlsmode.Offload(cfg.ServerConfig(), lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
				mu.Lock()
				cn, sni, hadTLS = tlsmode.ClientCN(&c.Info), c.Info.SNI, c.Info.TLS != nil
				mu.Unlock()
				p.ServeConn(ctx, c)
			})))
			ccfg := ca.ClientConfig("lb.test")
			if tt.clientCert {
				ccfg.Certificates = []tls.Certificate{ca.ClientCert(t, tt.wantCN)}
			}
			got, st, err := greeting(t, addr, ccfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("handshake without the required client certificate succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != "plain" || st.PeerCertificates[0].Subject.CommonName != "lb.test" {
				t.Errorf("reached %q with certificate %q", got, st.PeerCertificates[0].Subject.CommonName)
			}
			mu.Lock()
			defer mu.Unlock()
			if cn != tt.wantCN || sni != "lb.test" || !hadTLS {
				t.Errorf("ConnInfo: CN %q SNI %q TLS %v", cn, sni, hadTLS)
			}
		})
	}
}

// TestOffloadHTTP terminates TLS in an http.Server: backends see plain
// HTTP with the forwarded headers; clients get HTTP/2 through ALPN.
func TestOffloadHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	backend := testutil.HTTPBackend(t, "web")
	rp := &lb.ReverseProxy{Pool: pool(t, backend.Addr)}
	addr := serveHTTP(t, tlsmode.Config{Certificates: storeOf(t, ca.Leaf(t, "www.test"))}.HTTPConfig(), rp)
	_, port, _ := net.SplitHostPort(addr)

	for _, h2 := range []bool{true, false} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: ca.ClientConfig("www.test"), ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+addr+"/status?code=200", nil)
			req.Host = "www.test"
			req.Header.Set("X-Forwarded-For", "6.6.6.6") // forged: replaced
			req.Header.Set("X-Forwarded-Proto", "http")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want {
				t.Errorf("client spoke %s, want HTTP/%d", resp.Proto, want)
			}
			r, ok := backend.LastRequest()
			if !ok {
				t.Fatal("backend saw no request")
			}
			want := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "www.test", "X-Forwarded-Port": port}
			for k, v := range want {
				if got := r.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if r.Proto != "HTTP/1.1" || r.Host != "www.test" {
				t.Errorf("backend got %s Host %q, want plain HTTP/1.1 for www.test", r.Proto, r.Host)
			}
		})
	}
}

// TestOffloadHTTPCurl uses curl over HTTP/2 and HTTP/1.1.
func TestOffloadHTTPCurl(t *testing.T) {
	testutil.CheckLeaks(t)
	curl := testutil.LookBinary(t, "curl", "curl")
	ca := testutil.NewCA(t)
	backend := testutil.HTTPBackend(t, "web")
	rp := &lb.ReverseProxy{Pool: pool(t, backend.Addr)}
	addr := serveHTTP(t, tlsmode.Config{Certificates: storeOf(t, ca.Leaf(t, "www.test"))}.HTTPConfig(), rp)
	_, port, _ := net.SplitHostPort(addr)
	caFile := ca.WriteCAFile(t)
	for _, tt := range []struct{ flag, want string }{{"--http2", "2"}, {"--http1.1", "1.1"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, curl, "-sS", tt.flag, "--cacert", caFile,
			"--resolve", "www.test:"+port+":127.0.0.1", "-w", "\n%{http_version}", "https://www.test:"+port+"/").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", tt.flag, err, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[0] != "web" || lines[len(lines)-1] != tt.want {
			t.Errorf("curl %s: %q", tt.flag, out)
		}
		if r, _ := backend.LastRequest(); r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-Host") != "www.test:"+port {
			t.Errorf("curl %s: backend headers %v", tt.flag, r.Header)
		}
	}
}
