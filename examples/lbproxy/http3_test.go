package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// TestLBProxyHTTP3 checks that -http3 serves the https modes over HTTP/3 on
// the UDP port of -listen and that HTTPS responses announce it.
func TestLBProxyHTTP3(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	for _, mode := range []string{"https", "https-bridge"} {
		addr, lines := startOut(t, withFlags(t, "-mode", mode, "-http3"))
		_, port, _ := net.SplitHostPort(addr)
		tlsConf := &tls.Config{RootCAs: demoRoots(t, lines), ServerName: "localhost"}

		h1 := &http.Transport{TLSClientConfig: tlsConf}
		resp := getOK(t, &http.Client{Transport: h1, Timeout: 10 * time.Second}, "https://"+addr+"/")
		h1.CloseIdleConnections()
		if want := `h3=":` + port + `"; ma=86400`; resp.Header.Get("Alt-Svc") != want {
			t.Errorf("%s: HTTPS response with Alt-Svc %q, want %q", mode, resp.Header.Get("Alt-Svc"), want)
		}

		h3 := &qhttp3.Transport{TLSClientConfig: tlsConf}
		resp = getOK(t, &http.Client{Transport: h3, Timeout: 10 * time.Second}, "https://"+addr+"/")
		h3.Close()
		if resp.Proto != "HTTP/3.0" || resp.Header.Get("Alt-Svc") != "" {
			t.Errorf("%s: response over %s with Alt-Svc %q, want HTTP/3.0 without", mode, resp.Proto, resp.Header.Get("Alt-Svc"))
		}
	}

	// Access rules hold over HTTP/3 too: the TCP side refuses denied
	// clients at accept, the QUIC side answers their requests 403.
	addr, lines := startOut(t, withFlags(t, "-mode", "https", "-http3", "-deny", "127.0.0.0/8"))
	h3 := &qhttp3.Transport{TLSClientConfig: &tls.Config{RootCAs: demoRoots(t, lines), ServerName: "localhost"}}
	resp, err := (&http.Client{Transport: h3, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h3.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a denied client over HTTP/3 got %s, want 403", resp.Status)
	}

	for _, args := range [][]string{
		{"-mode", "http", "-http3"},
		{"-mode", "tls", "-http3"},
		{"-mode", "https", "-http3", "-accept-proxy", "127.0.0.1/32"},
	} {
		if err := refused(t, withFlags(t, append(args, "-backends", "127.0.0.1:1")...)); err == nil || !strings.Contains(err.Error(), "-http3") {
			t.Errorf("%q: %v, want -http3 refused", args, err)
		}
	}
}

// getOK sends a GET with c and returns the response, its body read; it fails
// the test unless the status is 200.
func getOK(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp
}

// TestLBProxyHTTP3Limits checks that -client-maxconn holds over HTTP/3: a
// client's QUIC connection beyond it is refused, another client's is not.
func TestLBProxyHTTP3Limits(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	addr, lines := startOut(t, withFlags(t, "-mode", "https", "-http3", "-client-maxconn", "1"))
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{RootCAs: demoRoots(t, lines), ServerName: "localhost", NextProtos: []string{qhttp3.NextProtoH3}}
	dial := func(ip string) (*quic.Conn, error) {
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: pc}
		t.Cleanup(func() {
			tr.Close()
			pc.Close()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qc, err := tr.Dial(ctx, ua, tlsConf, &quic.Config{})
		if err == nil {
			t.Cleanup(func() { qc.CloseWithError(0, "") })
		}
		return qc, err
	}
	first, err := dial("127.0.0.2")
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&qhttp3.Transport{}).NewClientConn(first).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("request within -client-maxconn: %s", resp.Status)
	}
	var te *quic.TransportError
	if _, err := dial("127.0.0.2"); !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused {
		t.Errorf("second connection of 127.0.0.2: %v, want CONNECTION_REFUSED", err)
	}
	if _, err := dial("127.0.0.1"); err != nil {
		t.Errorf("connection of another client: %v", err)
	}
}
