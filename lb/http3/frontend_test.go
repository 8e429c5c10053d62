package http3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/http3"
	"github.com/lbkit/lbkit/tlsmode"
)

// frontend is a proxy served over HTTPS on a TCP port and over HTTP/3 on
// the UDP port of the same number, run by lb.ServeTLS.
type frontend struct {
	*env
	port   int
	tcp    *http.Server
	cancel context.CancelFunc
	done   chan error // lb.ServeTLS's result
}

func newFrontend(t *testing.T) *frontend {
	t.Helper()
	e := &env{backend: testutil.HTTPBackend(t, "be1"), ca: testutil.NewCA(t)}
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Name: "be1", Addr: e.backend.Addr}}); err != nil {
		t.Fatal(err)
	}
	e.proxy = &lb.ReverseProxy{Name: "fe", Pool: pool}
	e.rec = &recorder{next: e.proxy}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		t.Skipf("UDP port %d is taken: %v", port, err)
	}
	e.addr = pc.LocalAddr().String()
	f := &frontend{env: e, port: port, done: make(chan error, 1)}
	f.tcp = &http.Server{
		Handler:           http3.AltSvc(port, 0, e.rec),
		TLSConfig:         tlsmode.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &e.leaf, nil }}.HTTPConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState:         e.proxy.ConnState,
	}
	e.leaf = e.ca.Leaf(t, "localhost")
	e.srv = http3.ForServer(f.tcp)
	e.srv.Handler = e.rec
	e.served = make(chan error, 1)
	go func() { e.served <- e.srv.Serve(pc) }()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- lb.ServeTLS(ctx, f.tcp, ln, 10*time.Second, e.proxy, e.srv) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
		<-e.served
		pc.Close()
	})
	return f
}

// tcpClient is an HTTPS client over TCP speaking HTTP/2 or HTTP/1.1.
func tcpClient(roots *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	tr.Protocols = new(http.Protocols)
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestAltSvc(t *testing.T) {
	f := newFrontend(t)
	want := `h3=":` + strconv.Itoa(f.port) + `"; ma=86400`
	for _, h2 := range []bool{false, true} {
		c := tcpClient(f.ca.Pool(), h2)
		resp, body, err := do(c, http.MethodGet, "https://"+f.addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.CloseIdleConnections()
		if wantMajor := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantMajor || string(body) != "be1\n" {
			t.Fatalf("got %s %q, want HTTP/%d.x and be1", resp.Proto, body, wantMajor)
		}
		if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want {
			t.Errorf("%s response: Alt-Svc %q, want %q", resp.Proto, got, want)
		}
		// The announced endpoint serves HTTP/3.
		c3 := newClient(t, f.ca.Pool(), nil)
		resp, body, err = do(c3.Client, http.MethodGet, "https://"+f.addr+"/", nil)
		if err != nil || resp.ProtoMajor != 3 || string(body) != "be1\n" {
			t.Fatalf("GET over the announced HTTP/3: %v %v %q", resp, err, body)
		}
		if got := resp.Header.Values("Alt-Svc"); len(got) != 0 {
			t.Errorf("HTTP/3 response: Alt-Svc %q, want none", got)
		}
	}

	// Plain HTTP gets no announcement, and a max age is in seconds.
	h := http3.AltSvc(443, time.Hour, http.NotFoundHandler())
	for _, tc := range []struct {
		tls  bool
		want string
	}{{false, ""}, {true, `h3=":443"; ma=3600`}} {
		r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		w := &testutil.DiscardWriter{H: http.Header{}}
		h.ServeHTTP(w, r)
		if got := w.H.Get("Alt-Svc"); got != tc.want {
			t.Errorf("TLS %v: Alt-Svc %q, want %q", tc.tls, got, tc.want)
		}
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	f := newFrontend(t)
	const h3Clients, perClient, h1Requests = 3, 4, 4
	total := h3Clients*perClient + h1Requests
	type result struct {
		proto string
		err   error
	}
	results := make(chan result, total)
	get := func(c *http.Client) {
		resp, body, err := do(c, http.MethodGet, "https://"+f.addr+"/slow?ms=300", nil)
		switch {
		case err != nil:
		case resp.StatusCode != http.StatusOK || string(body) != "be1\n":
			err = fmt.Errorf("%s %q", resp.Status, body)
		}
		proto := ""
		if resp != nil {
			proto = resp.Proto
		}
		results <- result{proto, err}
	}
	for range h3Clients {
		c := newClient(t, f.ca.Pool(), nil)
		for range perClient {
			go get(c.Client)
		}
	}
	h1 := tcpClient(f.ca.Pool(), false)
	for range h1Requests {
		go get(h1)
	}
	testutil.Eventually(t, "every request to reach the proxy", func() bool { return f.rec.entered.Load() == int64(total) })
	f.cancel()
	var h3 int
	for range total {
		r := <-results
		if r.err != nil {
			t.Errorf("a request in flight at shutdown failed: %v", r.err)
		}
		if r.proto == "HTTP/3.0" {
			h3++
		}
	}
	if h3 != h3Clients*perClient {
		t.Errorf("%d requests went over HTTP/3, want %d", h3, h3Clients*perClient)
	}
	if err := <-f.done; err != nil {
		t.Errorf("lb.ServeTLS: %v", err)
	}
	f.done <- nil // for the cleanup
	if err := <-f.served; !errors.Is(err, http3.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	f.served <- http3.ErrServerClosed
	testutil.Eventually(t, "QUIC connections to close", func() bool { return f.proxy.Stats().ConnCur == 0 })
}

func TestCertificateReloadUnderLoad(t *testing.T) {
	ca := testutil.NewCA(t)
	first, second := ca.Leaf(t, "localhost"), ca.Leaf(t, "localhost")
	certFile, keyFile := testutil.WritePEM(t, first)
	store := &tlsmode.Store{}
	if err := store.AddFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, tlsmode.Config{Certificates: store}.HTTPConfig(), ca, nil)

	const workers, maxPerWorker, perConn = 4, 200, 5
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second)
	for range workers {
		wg.Go(func() {
			var c *client
			for i := 0; i < maxPerWorker && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%perConn == 0 { // a new connection, a new handshake
					if c != nil {
						c.tr.Close()
					}
					c = newClient(t, ca.Pool(), nil)
				}
				resp, body, err := do(c.Client, http.MethodGet, e.url("/"), nil)
				if err == nil && (resp.StatusCode != http.StatusOK || string(body) != "be1\n") {
					err = fmt.Errorf("%s %q", resp.Status, body)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	testutil.Eventually(t, "load before the reload", func() bool { return ok.Load() >= 20 })

	// Replace the files as a deployment does (write aside, rename), then
	// reload.
	newCert, newKey := testutil.WritePEM(t, second)
	for _, p := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(p[1]), "tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	testutil.Eventually(t, "load after the reload", func() bool { return ok.Load() >= before+20 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during the reload; first: %v", n, n+ok.Load(), firstErr.Load())
	}

	// New handshakes present the new certificate.
	c := newClient(t, ca.Pool(), nil)
	resp, _, err := do(c.Client, http.MethodGet, e.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(second.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after the reload the server presents serial %v, want the new %v", got, leaf.SerialNumber)
	}
}
