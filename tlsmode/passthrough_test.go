package tlsmode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// clientHello returns the first flight a crypto/tls client with cfg sends.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	cli, srv := net.Pipe()
	defer srv.Close()
	go func() {
		c := tls.Client(cli, cfg)
		c.Handshake()
		c.Close()
	}()
	var buf bytes.Buffer
	b := make([]byte, 4096)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := srv.Read(b)
		buf.Write(b[:n])
		if err != nil {
			t.Fatalf("reading hello: %v", err)
		}
		if buf.Len() >= 5 && buf.Len() >= 5+int(buf.Bytes()[3])<<8|int(buf.Bytes()[4]) {
			break
		}
	}
	return buf.Bytes()
}

func TestParseClientHello(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		sni  string
		alpn []string
	}{
		{"sni and alpn", &tls.Config{ServerName: "a.example.com", NextProtos: []string{"h2", "http/1.1"}}, "a.example.com", []string{"h2", "http/1.1"}},
		{"no alpn", &tls.Config{ServerName: "b.example.com"}, "b.example.com", nil},
		{"ip target sends no sni", &tls.Config{ServerName: "127.0.0.1"}, "", nil},
		{"tls12 only", &tls.Config{ServerName: "c.test", MaxVersion: tls.VersionTLS12}, "c.test", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := clientHello(t, tt.cfg)
			h, err := tlsmode.ParseClientHello(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != tt.sni || !slices.Equal(h.SupportedProtos, tt.alpn) {
				t.Errorf("got SNI %q ALPN %q, want %q %q", h.ServerName, h.SupportedProtos, tt.sni, tt.alpn)
			}
			if _, err := tlsmode.ParseClientHello(b[:len(b)-1]); !errors.Is(err, tlsmode.ErrClientHello) {
				t.Errorf("truncated hello: err %v, want ErrClientHello", err)
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(clientHello(f, &tls.Config{ServerName: "a.example.com", NextProtos: []string{"h2"}}))
	f.Add(clientHello(f, &tls.Config{ServerName: "x", MaxVersion: tls.VersionTLS12}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := tlsmode.ParseClientHello(b)
		if (h == nil) == (err == nil) {
			t.Fatalf("hello %v with error %v", h, err)
		}
		if err == nil && len(h.ServerName) > 255 {
			t.Fatalf("server name of %d bytes", len(h.ServerName))
		}
	})
}

// TestPassthroughRoutesBySNI routes by SNI through lb.Mux to two TLS
// servers: each client's session ends at the server, which presents its own
// certificate; unknown and missing SNI take the default route.
func TestPassthroughRoutesBySNI(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	a := startTLSNameServer(t, "a", ca.ServerConfig(t, "a.test"))
	b := startTLSNameServer(t, "b", ca.ServerConfig(t, "b.test", "127.0.0.1"))
	mux := &lb.Mux{Default: pool(t, b.Addr)}
	if err := mux.Handle("a.test", pool(t, a.Addr)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	var seenALPN [][]string
	addr := serveL4(t, tlsmode.Passthrough(lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		mu.Lock()
		seen = append(seen, c.Info.SNI)
		seenALPN = append(seenALPN, c.Info.ALPN)
		mu.Unlock()
		mux.ServeConn(ctx, c)
	})))

	tests := []struct {
		sni, want string
		alpn      []string
	}{
		{"a.test", "a", []string{"x-test"}},
		{"b.test", "b", nil},
		{"unknown.test", "b", nil}, // default route; b's certificate does not cover it
		{"", "b", nil},             // no SNI: default route
	}
	for i, tt := range tests {
		cfg := ca.ClientConfig(tt.sni)
		cfg.NextProtos = tt.alpn
		if tt.sni == "unknown.test" {
			cfg.InsecureSkipVerify = true
		}
		if tt.sni == "" {
			cfg.ServerName = "127.0.0.1" // an IP: crypto/tls sends no SNI
		}
		got, st, err := greeting(t, addr, cfg)
		if err != nil {
			t.Fatalf("%q: %v", tt.sni, err)
		}
		if got != tt.want {
			t.Errorf("%q: reached %q, want %q", tt.sni, got, tt.want)
		}
		// The session ends at the server: its certificate, not one of lbkit's.
		leaf := st.PeerCertificates[0]
		if leaf.Subject.CommonName != map[string]string{"a": "a.test", "b": "b.test"}[tt.want] {
			t.Errorf("%q: certificate %q", tt.sni, leaf.Subject.CommonName)
		}
		mu.Lock()
		sni, alpn := seen[i], seenALPN[i]
		mu.Unlock()
		if sni != tt.sni || !slices.Equal(alpn, tt.alpn) {
			t.Errorf("%q: Info.SNI %q ALPN %q", tt.sni, sni, alpn)
		}
	}
}

func TestPassthroughClosesNonTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	var called atomic.Bool
	addr := serveL4(t, tlsmode.Passthrough(lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		called.Store(true)
		c.Close()
	})))
	for _, in := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(in))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%q: read %d, %v; want the connection closed", in, n, err)
		}
	}
	if called.Load() {
		t.Error("next called for a connection without a ClientHello")
	}
}

// TestPassthroughOpenSSL checks the route with openssl s_client: it sees the
// server's certificate.
func TestPassthroughOpenSSL(t *testing.T) {
	testutil.CheckLeaks(t)
	openssl := testutil.LookBinary(t, "openssl", "openssl")
	ca := testutil.NewCA(t)
	a := startTLSNameServer(t, "a", ca.ServerConfig(t, "a.test"))
	b := startTLSNameServer(t, "b", ca.ServerConfig(t, "b.test"))
	mux := &lb.Mux{Default: pool(t, b.Addr)}
	mux.Handle("a.test", pool(t, a.Addr))
	addr := serveL4(t, tlsmode.Passthrough(mux))
	caFile := ca.WriteCAFile(t)
	for _, name := range []string{"a.test", "b.test"} {
		out := sClient(t, openssl, addr, name, caFile)
		if !strings.Contains(out, "Peer certificate: O = lbkit tests, CN = "+name) {
			t.Errorf("%s: certificate not the server's:\n%s", name, out)
		}
		if !strings.Contains(out, "Verification: OK") {
			t.Errorf("%s: not verified:\n%s", name, out)
		}
	}
}

// sClient runs openssl s_client against addr with SNI name and returns its
// output.
func sClient(t *testing.T, openssl, addr, name, caFile string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"s_client", "-connect", addr, "-servername", name, "-CAfile", caFile, "-brief"}, extra...)
	cmd := exec.CommandContext(ctx, openssl, args...)
	cmd.Stdin = strings.NewReader("Q\n") // quit at once, unless -ign_eof: until the server closes
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return string(out)
}
