package lb_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestServeTLS: ServeTLS serves an *http.Server over TLS with its
// TLSConfig, with HTTP/2 negotiated through ALPN as net/http's ServeTLS
// does, and returns nil once ctx is done.
func TestServeTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s tls=%t", r.Proto, r.TLS != nil)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "localhost", "127.0.0.1")}},
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.ServeTLS(ctx, srv, ln, time.Second) }()

	tr := &http.Transport{TLSClientConfig: ca.ClientConfig("localhost"), ForceAttemptHTTP2: true}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + ln.Addr().String() + "/")
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	must(t, err)
	if got, want := string(body), "HTTP/2.0 tls=true"; got != want {
		t.Errorf("handler saw %q, want %q", got, want)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Errorf("client negotiated %+v, want h2", resp.TLS)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after ctx is done", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx was done")
	}
}

// TestServePlainHTTP: Serve serves the listener as it is.
func TestServePlainHTTP(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, ln, time.Second) }()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	must(t, err)
	if string(body) != "HTTP/1.1" {
		t.Errorf("handler saw %q, want HTTP/1.1", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx was done")
	}
}
