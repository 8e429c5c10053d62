package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/demo"
)

// greet dials addr over TLS, reads the server's greeting and checks the
// echo; it returns the greeting.
func greet(t *testing.T, addr string, cfg *tls.Config) (string, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	c.Write([]byte("ping\n"))
	if echo, err := r.ReadString('\n'); err != nil || !strings.HasSuffix(echo, "ping\n") {
		t.Errorf("echo %q, %v", echo, err)
	}
	return strings.TrimSpace(line), nil
}

func TestLBProxyTLSModes(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "localhost", "127.0.0.1"))
	clientCfg := func(name string) *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: name} }

	// TLS servers with certificates of another CA, for bridging and
	// passthrough.
	sca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	scaFile, err := sca.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tlsServers, err := demo.TLSBackends(ctx, sca, "a.localhost", "b.localhost")
	if err != nil {
		t.Fatal(err)
	}
	a, b := tlsServers[0], tlsServers[1]
	httpsServers, err := demo.HTTPSBackends(ctx, sca, 1)
	if err != nil {
		t.Fatal(err)
	}
	plainTCP := testutil.NameServer(t, "plain")

	t.Run("tls", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.mode, cfg.backends, cfg.certFile, cfg.keyFile = "tls", plainTCP.Addr, certFile, keyFile
		addr := start(t, cfg)
		if got, err := greet(t, addr, clientCfg("localhost")); err != nil || got != "plain" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("tls-bridge", func(t *testing.T) {
		for _, tt := range []struct {
			name     string
			set      func(c *config)
			wantFail bool
		}{
			{"verified", func(c *config) { c.backendCA = scaFile }, false},
			{"untrusted refused", func(c *config) {}, true},
			{"verification off", func(c *config) { c.backendInsecure = true }, false},
			{"client SNI", func(c *config) { c.backendCA, c.backendSNI = scaFile, true }, false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := defaultConfig()
				cfg.mode, cfg.backends, cfg.certFile, cfg.keyFile = "tls-bridge", a, certFile, keyFile
				cfg.retries = -1
				tt.set(cfg)
				addr := start(t, cfg)
				sni := "localhost"
				if cfg.backendSNI {
					sni = "a.localhost" // the server's name; the front's certificate does not cover it
				}
				c := clientCfg(sni)
				c.InsecureSkipVerify = sni != "localhost"
				got, err := greet(t, addr, c)
				if tt.wantFail {
					if err == nil {
						t.Fatalf("reached %q through an untrusted server", got)
					}
					return
				}
				if err != nil || got != "hello from a.localhost" {
					t.Fatalf("%q, %v", got, err)
				}
			})
		}
	})
	t.Run("tls-passthrough", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.mode, cfg.backends = "tls-passthrough", b
		cfg.sniRoutes = "a.localhost=" + a
		addr := start(t, cfg)
		for sni, want := range map[string]string{"a.localhost": "hello from a.localhost", "b.localhost": "hello from b.localhost", "": "hello from b.localhost"} {
			c := &tls.Config{RootCAs: sca.Pool(), ServerName: sni}
			if sni == "" {
				c.ServerName = "127.0.0.1" // no SNI; the server's certificate covers 127.0.0.1
			}
			if got, err := greet(t, addr, c); err != nil || got != want {
				t.Errorf("SNI %q: %q, %v", sni, got, err)
			}
		}
	})
	t.Run("https", func(t *testing.T) {
		backend := testutil.HTTPBackend(t, "web")
		cfg := defaultConfig()
		cfg.mode, cfg.backends, cfg.certFile, cfg.keyFile = "https", backend.Addr, certFile, keyFile
		addr := start(t, cfg)
		for _, h2 := range []bool{true, false} {
			proto, _ := get(t, addr, ca.Pool(), h2, 200)
			if want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]; proto != want {
				t.Errorf("client got %s, want %s", proto, want)
			}
			if r, _ := backend.LastRequest(); r.Header.Get("X-Forwarded-Proto") != "https" || r.Proto != "HTTP/1.1" {
				t.Errorf("backend saw %s with %v", r.Proto, r.Header)
			}
		}
	})
	t.Run("https-bridge", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			set    func(c *config)
			status int
		}{
			{"verified", func(c *config) { c.backendCA = scaFile }, 200},
			{"untrusted refused", func(c *config) {}, 502},
			{"verification off", func(c *config) { c.backendInsecure = true }, 200},
			{"verification off, h2", func(c *config) { c.backendInsecure, c.backendH2 = true, true }, 200},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := defaultConfig()
				cfg.mode, cfg.backends, cfg.certFile, cfg.keyFile = "https-bridge", httpsServers[0], certFile, keyFile
				tt.set(cfg)
				addr := start(t, cfg)
				_, body := get(t, addr, ca.Pool(), true, tt.status)
				proto := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[cfg.backendH2]
				if tt.status == 200 && !strings.Contains(body, "over "+proto+" with TLS (you are 127.0.0.1, https)") {
					t.Errorf("body %q", body)
				}
			})
		}
	})
}

// get requests https://addr/ and checks the status; it returns the
// protocol and the body.
func get(t *testing.T, addr string, roots *x509.CertPool, h2 bool, status int) (string, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %q", resp.StatusCode, status, body)
	}
	return resp.Proto, string(body)
}

// TestLBProxyTLSDemo runs each TLS mode with its demo servers and generated
// certificates, as a user trying it without flags would.
func TestLBProxyTLSDemo(t *testing.T) {
	testutil.CheckLeaks(t)
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	for _, mode := range []string{"https", "https-bridge", "tls", "tls-bridge", "tls-passthrough"} {
		t.Run(mode, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.mode = mode
			addr, lines := startOut(t, cfg)
			roots := demoRoots(t, lines)
			switch mode {
			case "https", "https-bridge":
				_, body := get(t, addr, roots, true, 200)
				if want := map[string]string{"https": "hello from backend-", "https-bridge": "hello from tls-backend-"}[mode]; !strings.HasPrefix(body, want) {
					t.Errorf("body %q", body)
				}
			case "tls", "tls-bridge":
				got, err := greet(t, addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
				if want := map[string]string{"tls": "hello from backend-", "tls-bridge": "hello from "}[mode]; err != nil || !strings.HasPrefix(got, want) {
					t.Errorf("%q, %v", got, err)
				}
			case "tls-passthrough":
				for _, name := range []string{"a.localhost", "b.localhost"} {
					got, err := greet(t, addr, &tls.Config{RootCAs: roots, ServerName: name})
					if err != nil || got != "hello from "+name {
						t.Errorf("%s: %q, %v", name, got, err)
					}
				}
			}
		})
	}
}

// demoRoots loads the CA file lbproxy said it generated.
func demoRoots(t *testing.T, lines []string) *x509.CertPool {
	t.Helper()
	for _, l := range lines {
		if file, ok := strings.CutPrefix(l, "generated a CA for demo certificates: "); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(b) {
				t.Fatalf("no certificate in %s", file)
			}
			return roots
		}
	}
	t.Fatalf("lbproxy named no generated CA in %q", lines)
	return nil
}
