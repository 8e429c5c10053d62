package demo_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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

// greet connects (over TLS when cfg is set), reads the greeting and checks
// one echoed line; it returns the greeting.
func greet(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	hello, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(strings.TrimSpace(hello), "hello from ")
	io.WriteString(c, "ping\n")
	if echo, err := r.ReadString('\n'); err != nil || echo != name+": ping\n" {
		t.Fatalf("echo %q, %v; want %q", echo, err, name+": ping\n")
	}
	return hello
}

func TestTCPBackends(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrs, err := demo.TCPBackends(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, addr := range addrs {
		want := []string{"hello from backend-1\n", "hello from backend-2\n"}[i]
		if got := greet(t, addr, nil); got != want {
			t.Errorf("%s greeted %q, want %q", addr, got, want)
		}
	}
	cancel()
	testutil.Eventually(t, "the backend stops accepting after ctx is done", func() bool {
		c, err := net.DialTimeout("tcp", addrs[0], time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

func TestTLSBackends(t *testing.T) {
	testutil.CheckLeaks(t)
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := demo.TLSBackends(t.Context(), ca, "a.localhost", "b.localhost")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.localhost", "b.localhost"} {
		if got := greet(t, addrs[i], &tls.Config{RootCAs: ca.Pool(), ServerName: name}); got != "hello from "+name+"\n" {
			t.Errorf("%s greeted %q", name, got)
		}
	}
	// Another CA's pool does not verify them.
	other, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrs[0], &tls.Config{RootCAs: other.Pool(), ServerName: "a.localhost"})
	if err == nil {
		c.Close()
		t.Fatal("handshake verified by another CA")
	}
}

func TestHTTPSBackends(t *testing.T) {
	testutil.CheckLeaks(t)
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := demo.HTTPSBackends(t.Context(), ca, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addrs[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Backend") != "tls-backend-1" || !strings.HasPrefix(string(body), "hello from tls-backend-1 over HTTP/2.0 with TLS") {
		t.Fatalf("answer %v %q", resp.Header, body)
	}
}

func TestHTTPBackendsBody(t *testing.T) {
	testutil.CheckLeaks(t)
	addrs, err := demo.HTTPBackends(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addrs[0]+"/x", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from backend-1 (you are 192.0.2.1, path /x)\n"; string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
}

func TestCA(t *testing.T) {
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("example.test", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != "example.test" || len(leaf.DNSNames) != 1 || len(leaf.IPAddresses) != 2 {
		t.Fatalf("names: CN %q, DNS %v, IP %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	for _, name := range []string{"example.test", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ca.Issue(); err == nil {
		t.Error("a certificate without a name was issued")
	}

	file, err := ca.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no certificate", file)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		t.Fatal("the CA file does not load")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.test", Roots: roots}); err != nil {
		t.Errorf("verified with the CA file: %v", err)
	}
}
