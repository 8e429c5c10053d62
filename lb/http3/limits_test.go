package http3_test

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

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/http3"
	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// limitedEnv is a ReverseProxy with lim served over HTTP/3, the Server
// taking lim too when onServer is set.
type limitedEnv struct {
	addr  *net.UDPAddr
	ca    *testutil.CA
	proxy *lb.ReverseProxy
}

func newLimitedEnv(t *testing.T, lim *lb.Limits, onServer bool, configure func(*lb.ReverseProxy)) *limitedEnv {
	t.Helper()
	backend := testutil.HTTPBackend(t, "be1")
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Name: "be1", Addr: backend.Addr}}); err != nil {
		t.Fatal(err)
	}
	e := &limitedEnv{ca: testutil.NewCA(t)}
	e.proxy = &lb.ReverseProxy{Name: "h3", Pool: pool, Limits: lim}
	if configure != nil {
		configure(e.proxy)
	}
	srv := &http3.Server{
		Handler:     e.proxy,
		TLSConfig:   e.ca.ServerConfig(t, "localhost"),
		ConnContext: e.proxy.ConnContext,
		ConnState:   e.proxy.ConnState,
	}
	if onServer {
		srv.Limits = lim
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = pc.LocalAddr().(*net.UDPAddr)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http3.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		pc.Close()
	})
	return e
}

// dialH3 is dial with an HTTP/3 client connection over the result.
func (e *limitedEnv) dialH3(t *testing.T, ip string) *qhttp3.ClientConn {
	t.Helper()
	qc, err := e.dial(t, ip)
	if err != nil {
		t.Fatalf("connection of %s: %v", ip, err)
	}
	return (&qhttp3.Transport{}).NewClientConn(qc)
}

// dial opens a QUIC connection for HTTP/3 from a socket of its own on the
// local address ip.
func (e *limitedEnv) dial(t *testing.T, ip string) (*quic.Conn, error) {
	t.Helper()
	pc, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	// Short enough for Eventually to retry an attempt whose packets were
	// lost.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, e.addr, &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost", NextProtos: []string{qhttp3.NextProtoH3}}, &quic.Config{})
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, err
	}
	t.Cleanup(func() {
		qc.CloseWithError(0, "")
		tr.Close()
		pc.Close()
	})
	return qc, nil
}

// get sends a GET over cc and returns its status and body.
func get(t *testing.T, cc *qhttp3.ClientConn) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://localhost/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// refused reports whether err is QUIC's CONNECTION_REFUSED from the server.
func refused(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode == quic.ConnectionRefused && te.Remote
}

func TestLimitsClientMaxConnsRefusesQUIC(t *testing.T) {
	lim := &lb.Limits{ClientMaxConns: 2}
	e := newLimitedEnv(t, lim, true, nil)
	var held []*quic.Conn
	for range 2 {
		qc, err := e.dial(t, "127.0.0.2")
		if err != nil {
			t.Fatalf("connection within ClientMaxConns: %v", err)
		}
		held = append(held, qc)
	}
	if _, err := e.dial(t, "127.0.0.2"); !refused(err) {
		t.Fatalf("third connection of 127.0.0.2: %v, want CONNECTION_REFUSED", err)
	}
	// Another client is not concerned, and its requests pass.
	other := e.dialH3(t, "127.0.0.1")
	if resp, body := get(t, other); resp.StatusCode != http.StatusOK || !strings.Contains(body, "be1") {
		t.Errorf("request of 127.0.0.1: %s %q", resp.Status, body)
	}
	// Each Initial packet of the refused attempt counts (a ClientHello
	// with a post-quantum key share takes two).
	if got := lim.Stats().ClientConns; got == 0 {
		t.Error("Stats().ClientConns = 0 after a refusal")
	}
	// A connection that ends gives its place back.
	held[0].CloseWithError(0, "")
	// Each attempt may wait 2 s for a lost Initial: give it several.
	testutil.EventuallyWithin(t, 15*time.Second, "a connection of 127.0.0.2 to be admitted again", func() bool {
		_, err := e.dial(t, "127.0.0.2")
		if err != nil {
			t.Logf("dial: %v", err)
		}
		return err == nil
	})
}

func TestLimitsMaxConnsRefusesQUIC(t *testing.T) {
	lim := &lb.Limits{MaxConns: 1}
	e := newLimitedEnv(t, lim, true, nil)
	first, err := e.dial(t, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, (&qhttp3.Transport{}).NewClientConn(first)); resp.StatusCode != http.StatusOK {
		t.Errorf("request within MaxConns: %s", resp.Status)
	}
	if _, err := e.dial(t, "127.0.0.1"); !refused(err) {
		t.Fatalf("connection beyond MaxConns: %v, want CONNECTION_REFUSED", err)
	}
	if s := lim.Stats(); s.Full == 0 || s.Conns != 1 {
		t.Errorf("Stats() = %+v, want Full counted and Conns 1", s)
	}
	first.CloseWithError(0, "")
	// Each attempt may wait 2 s for a lost Initial: give it several.
	testutil.EventuallyWithin(t, 15*time.Second, "MaxConns to admit a connection again", func() bool {
		_, err := e.dial(t, "127.0.0.1")
		return err == nil
	})
}

// TestLimitsClientRateOverHTTP3 checks that ClientRate counts the
// requests of a client over HTTP/3, with the Server's Limits (requests
// find their connection's entry) and without (the proxy keys them by
// RemoteAddr).
func TestLimitsClientRateOverHTTP3(t *testing.T) {
	for _, onServer := range []bool{true, false} {
		name := "by-addr"
		if onServer {
			name = "by-conn"
		}
		t.Run(name, func(t *testing.T) {
			lim := &lb.Limits{ClientRate: 0.01, ClientBurst: 2}
			e := newLimitedEnv(t, lim, onServer, nil)
			qc := e.dialH3(t, "127.0.0.2")
			for i := range 2 {
				if resp, _ := get(t, qc); resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d within the burst: %s", i, resp.Status)
				}
			}
			resp, _ := get(t, qc)
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Errorf("request beyond the burst: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
			}
			// A new connection of the same client shares its rate.
			qc2 := e.dialH3(t, "127.0.0.2")
			if resp, _ := get(t, qc2); resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("request of the same client on a new connection: %s, want 429", resp.Status)
			}
			other := e.dialH3(t, "127.0.0.1")
			if resp, _ := get(t, other); resp.StatusCode != http.StatusOK {
				t.Errorf("request of another client: %s", resp.Status)
			}
			if got := lim.Stats().ClientRate; got != 2 {
				t.Errorf("Stats().ClientRate = %d, want 2", got)
			}
		})
	}
}

// TestClientTimeoutOverHTTP3 checks that the ReverseProxy's MinBodyRate
// and ClientTimeout bound a request body over HTTP/3 as over HTTP/1.1: a
// client that stops sending gets 408.
func TestClientTimeoutOverHTTP3(t *testing.T) {
	e := newLimitedEnv(t, nil, false, func(p *lb.ReverseProxy) {
		p.ClientTimeout = 300 * time.Millisecond
		p.MinBodyRate = -1
	})
	qc, err := e.dial(t, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	body, stall := io.Pipe()
	defer stall.Close()
	go func() { stall.Write([]byte("the start of a body that never ends")) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://localhost/", body)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := (&qhttp3.Transport{}).NewClientConn(qc).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %s, want 408", resp.Status)
	}
	if resp.Header.Get("Connection") != "" {
		t.Errorf("an HTTP/3 response with Connection %q", resp.Header.Get("Connection"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the 408 came after %v", d)
	}
	if got := e.proxy.Stats().ClientAborts; got != 1 {
		t.Errorf("ClientAborts = %d, want 1", got)
	}
}
