package http3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/http3"
)

func TestMain(m *testing.M) {
	// quic-go warns when it cannot raise the UDP buffer sizes, which is
	// harmless on loopback.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// seen is what a handler in front of the proxy saw of one request.
type seen struct {
	proto, remote string
	tls, early    bool
}

// recorder records what the requests that reach it look like.
type recorder struct {
	next    http.Handler
	entered atomic.Int64
	mu      sync.Mutex
	last    seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.entered.Add(1)
	rec.mu.Lock()
	rec.last = seen{proto: r.Proto, remote: r.RemoteAddr, tls: r.TLS != nil, early: http3.Is0RTT(r)}
	rec.mu.Unlock()
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) lastSeen() seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last
}

// env is a ReverseProxy in front of one HTTP/1.1 backend, served over
// HTTP/3 on a loopback UDP socket.
type env struct {
	backend *testutil.Backend
	proxy   *lb.ReverseProxy
	rec     *recorder
	ca      *testutil.CA
	leaf    tls.Certificate // frontend tests: the certificate presented
	srv     *http3.Server
	addr    string // host:port of the UDP socket
	served  chan error
}

// newEnv starts the proxy over HTTP/3 with tlsConf (nil: a leaf of a new
// CA for localhost), after configure (if any) set up the Server.
func newEnv(t testing.TB, tlsConf *tls.Config, ca *testutil.CA, configure func(*http3.Server)) *env {
	t.Helper()
	return newEnvPool(t, tlsConf, ca, configure, nil)
}

// newEnvPool is newEnv with the proxy's Pool, when not nil, instead of one
// of the backend.
func newEnvPool(t testing.TB, tlsConf *tls.Config, ca *testutil.CA, configure func(*http3.Server), pool *lb.Pool) *env {
	t.Helper()
	e := &env{backend: testutil.HTTPBackend(t, "be1"), ca: ca}
	if e.ca == nil {
		e.ca = testutil.NewCA(t)
	}
	if tlsConf == nil {
		tlsConf = e.ca.ServerConfig(t, "localhost")
	}
	if pool == nil {
		pool = &lb.Pool{Name: "web"}
		if err := pool.Update([]lb.Server{{Name: "be1", Addr: e.backend.Addr}}); err != nil {
			t.Fatal(err)
		}
	}
	e.proxy = &lb.ReverseProxy{Name: "h3", Pool: pool}
	e.rec = &recorder{next: e.proxy}
	e.srv = &http3.Server{
		Handler:     e.rec,
		TLSConfig:   tlsConf,
		ConnContext: e.proxy.ConnContext,
		ConnState:   e.proxy.ConnState,
	}
	if configure != nil {
		configure(e.srv)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = pc.LocalAddr().String()
	e.served = make(chan error, 1)
	go func() { e.served <- e.srv.Serve(pc) }()
	t.Cleanup(func() {
		e.srv.Close()
		if err := <-e.served; !errors.Is(err, http3.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		pc.Close()
	})
	return e
}

func (e *env) url(path string) string { return "https://" + e.addr + path }

// client is an HTTP/3 client that records the local address of its QUIC
// connections.
type client struct {
	*http.Client
	tr *qhttp3.Transport
	mu sync.Mutex
	la []net.Addr
}

func newClient(t testing.TB, roots *x509.CertPool, cache tls.ClientSessionCache) *client {
	t.Helper()
	c := &client{}
	c.tr = &qhttp3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: cache},
		// Each connection gets a socket of its own on 127.0.0.2, so that
		// the client's address differs from the proxy's.
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			pc, err := net.ListenPacket("udp", "127.0.0.2:0")
			if err != nil {
				return nil, err
			}
			qt := &quic.Transport{Conn: pc}
			qc, err := qt.DialEarly(ctx, ua, tlsCfg, cfg)
			if err != nil {
				qt.Close()
				pc.Close()
				return nil, err
			}
			context.AfterFunc(qc.Context(), func() {
				qt.Close()
				pc.Close()
			})
			c.mu.Lock()
			c.la = append(c.la, qc.LocalAddr())
			c.mu.Unlock()
			return qc, nil
		},
	}
	c.Client = &http.Client{Transport: c.tr, Timeout: 10 * time.Second}
	t.Cleanup(func() { c.tr.Close() })
	return c
}

func (c *client) localAddrs() []net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]net.Addr(nil), c.la...)
}

// do sends a request and returns the response with its body read.
func do(c *http.Client, method, url string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestProxyGetPost(t *testing.T) {
	e := newEnv(t, nil, nil, nil)
	c := newClient(t, e.ca.Pool(), nil)

	resp, body, err := do(c.Client, http.MethodGet, e.url("/hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "be1\n" || resp.Proto != "HTTP/3.0" {
		t.Fatalf("GET: %s %q over %s, want 200 %q over HTTP/3.0", resp.Status, body, resp.Proto, "be1\n")
	}
	got := e.rec.lastSeen()
	las := c.localAddrs()
	if len(las) != 1 {
		t.Fatalf("client dialed %d connections, want 1", len(las))
	}
	if got.proto != "HTTP/3.0" || !got.tls || got.early || got.remote != las[0].String() {
		t.Errorf("the proxy saw %+v, want HTTP/3.0 over TLS, not early, from %s", got, las[0])
	}
	be, ok := e.backend.LastRequest()
	if !ok {
		t.Fatal("the backend recorded no request")
	}
	clientIP := las[0].(*net.UDPAddr).IP.String()
	if be.Proto != "HTTP/1.1" || be.Header.Get("X-Forwarded-For") != clientIP ||
		be.Header.Get("X-Forwarded-Proto") != "https" || be.Header.Get("Early-Data") != "" {
		t.Errorf("backend got %s with X-Forwarded-For %q, -Proto %q, Early-Data %q; want HTTP/1.1, %q, https, none",
			be.Proto, be.Header.Get("X-Forwarded-For"), be.Header.Get("X-Forwarded-Proto"), be.Header.Get("Early-Data"), clientIP)
	}

	for _, size := range []int{0, 1, 100 << 10, 1 << 20} {
		payload := make([]byte, size)
		rand.Read(payload)
		resp, body, err := do(c.Client, http.MethodPost, e.url("/echo"), payload)
		if err != nil {
			t.Fatalf("POST %d bytes: %v", size, err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, payload) {
			t.Fatalf("POST %d bytes: %s with %d bytes back, want 200 and the same bytes", size, resp.Status, len(body))
		}
	}
}

func TestStatsCountQUICConnections(t *testing.T) {
	e := newEnv(t, nil, nil, nil)
	const clients, requests = 3, 4
	for range clients {
		c := newClient(t, e.ca.Pool(), nil)
		for range requests {
			if resp, _, err := do(c.Client, http.MethodGet, e.url("/"), nil); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", resp, err)
			}
		}
		if n := len(c.localAddrs()); n != 1 {
			t.Fatalf("a client dialed %d connections, want 1", n)
		}
		st := e.proxy.Stats()
		if st.ConnCur != 1 {
			t.Errorf("ConnCur = %d with one client connected, want 1", st.ConnCur)
		}
		c.tr.Close()
		testutil.Eventually(t, "the closed connection to leave ConnCur", func() bool { return e.proxy.Stats().ConnCur == 0 })
	}
	st := e.proxy.Stats()
	if st.Requests != clients*requests || st.ConnTotal != clients || st.Responses.Class2xx != clients*requests {
		t.Errorf("Stats: %d requests, %d connections, %d 2xx; want %d, %d, %d",
			st.Requests, st.ConnTotal, st.Responses.Class2xx, clients*requests, clients, clients*requests)
	}
}
