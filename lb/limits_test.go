package lb_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dialFrom connects to addr from the loopback address src (127.0.0.2 is a
// second client on the same machine).
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// expectQuiet checks that nothing arrives on c for a while: the connection
// waits, neither served nor closed nor reset.
func expectQuiet(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: read %d bytes, %v; want a timeout (waiting)", what, n, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// expectClosed checks that the frontend closed c without sending anything.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: read %d bytes, %v; want the connection closed", what, n, err)
	}
}

// nameFrontend serves a Pool of one testutil.NameServer, "a", on a
// TCPFrontend with lim, on ln (nil: a new loopback listener).
func nameFrontend(t *testing.T, lim *lb.Limits, wrap func(net.Listener) net.Listener) (*lb.TCPFrontend, string) {
	t.Helper()
	name := testutil.NameServer(t, "a")
	pool := &lb.Pool{Name: "names"}
	must(t, pool.Update(servers(name.Addr)))
	fe := &lb.TCPFrontend{Name: "fe", Backend: pool, Limits: lim}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	done := make(chan error, 1)
	go func() { done <- fe.Serve(ln) }()
	t.Cleanup(func() {
		fe.Close()
		if err := <-done; !errors.Is(err, lb.ErrFrontendClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return fe, addr
}

// startLimitedL7 serves proxy on a loopback http.Server with lim at both
// ends, as Limits documents, wrap applied first to the listener; it
// returns the address.
func startLimitedL7(t *testing.T, proxy *lb.ReverseProxy, lim *lb.Limits, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	proxy.Limits = lim
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, ConnContext: lim.ConnContext}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, frontendOf(t, srv), lim.Listener(ln), time.Second, proxy) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

func webPool(t *testing.T) *lb.Pool {
	t.Helper()
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	return pool
}

const getReq = "GET / HTTP/1.1\r\nHost: lb.test\r\n\r\n"

// httpConn is a raw HTTP/1.1 client connection.
type httpConn struct {
	net.Conn
	br *bufio.Reader
}

func httpDial(t *testing.T, src, addr string) *httpConn {
	c := dialFrom(t, src, addr)
	return &httpConn{c, bufio.NewReader(c)}
}

func (c *httpConn) get(t *testing.T) *http.Response {
	t.Helper()
	return c.roundTrip(t, getReq)
}

// roundTrip writes req and reads one response, body included.
func (c *httpConn) roundTrip(t *testing.T, req string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c.Conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp
}

func TestLimitsMaxConnsL4(t *testing.T) {
	testutil.CheckLeaks(t)
	fe, addr := nameFrontend(t, &lb.Limits{MaxConns: 2}, nil)
	var served []net.Conn
	for range 2 {
		c := dialFrom(t, "127.0.0.1", addr)
		if got := readName(t, c); got != "a" {
			t.Fatalf("greeting %q", got)
		}
		served = append(served, c)
	}
	// Two more connect (the kernel completes the handshake) and wait.
	waiting := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	for _, c := range waiting {
		expectQuiet(t, c, "a connection beyond MaxConns")
	}
	if st := fe.Stats(); st.ConnCur != 2 || st.ConnTotal != 2 || st.Denied != 0 {
		t.Fatalf("stats with 2 served and 2 waiting: %+v", st)
	}
	// Each close lets one waiting connection in.
	for i, c := range waiting {
		served[i].Close()
		if got := readName(t, c); got != "a" {
			t.Fatalf("waiting connection %d: greeting %q", i, got)
		}
	}
	if st := fe.Stats(); st.ConnTotal != 4 || st.ConnMax != 2 {
		t.Errorf("stats after the waiting connections were served: %+v", st)
	}
}

func TestLimitsMaxConnsL7(t *testing.T) {
	testutil.CheckLeaks(t)
	addr := startLimitedL7(t, &lb.ReverseProxy{Pool: webPool(t)}, &lb.Limits{MaxConns: 2}, nil)
	var served []*httpConn
	for range 2 {
		c := httpDial(t, "127.0.0.1", addr)
		if resp := c.get(t); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		served = append(served, c)
	}
	waiting := httpDial(t, "127.0.0.1", addr)
	if _, err := io.WriteString(waiting, getReq); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, waiting, "a connection beyond MaxConns")
	served[0].Close()
	resp, err := http.ReadResponse(waiting.br, nil)
	if err != nil {
		t.Fatalf("the waiting connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the waiting connection got %d", resp.StatusCode)
	}
	// The first connection still works: keep-alive is not affected.
	if resp := served[1].get(t); resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestLimitsClientConnsL4(t *testing.T) {
	testutil.CheckLeaks(t)
	fe, addr := nameFrontend(t, &lb.Limits{ClientMaxConns: 2}, nil)
	var mine []net.Conn
	for range 2 {
		c := dialFrom(t, "127.0.0.1", addr)
		if got := readName(t, c); got != "a" {
			t.Fatalf("greeting %q", got)
		}
		mine = append(mine, c)
	}
	expectClosed(t, dialFrom(t, "127.0.0.1", addr), "a third connection from 127.0.0.1")
	if got := readName(t, dialFrom(t, "127.0.0.2", addr)); got != "a" {
		t.Fatalf("another client: greeting %q", got)
	}
	if st := fe.Stats(); st.Denied != 1 {
		t.Errorf("Denied = %d, want 1", st.Denied)
	}
	// Once one of its connections has ended, the client may open another.
	mine[0].Close()
	// ActiveConns drops once the connection is closed, and so released.
	testutil.Eventually(t, "the closed connection to end", func() bool { return fe.ActiveConns() == 2 })
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("after a close: greeting %q", got)
	}
	if st := fe.Limits.Stats(); st.ClientConns != 1 || st.Clients != 2 {
		t.Errorf("limit stats %+v", st)
	}
}

func TestLimitsClientConnsL7(t *testing.T) {
	testutil.CheckLeaks(t)
	logs := newCollector()
	proxy := &lb.ReverseProxy{Name: "fe", Pool: webPool(t), AccessLog: logs}
	addr := startLimitedL7(t, proxy, &lb.Limits{ClientMaxConns: 1}, nil)

	first := httpDial(t, "127.0.0.1", addr)
	if resp := first.get(t); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	logs.Next(t)
	second := httpDial(t, "127.0.0.1", addr)
	resp := second.get(t)
	if resp.StatusCode != http.StatusTooManyRequests || !resp.Close || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("second connection: %d, close %v, header %v", resp.StatusCode, resp.Close, resp.Header)
	}
	if _, err := second.br.ReadByte(); err != io.EOF {
		t.Errorf("after the 429 the connection should be closed; read: %v", err)
	}
	rec := logs.Next(t)
	if rec.Status != 429 || rec.Termination != "PR" || rec.Server != lb.NoServerName || rec.Client.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("record of the refused request: %+v", rec)
	}
	other := httpDial(t, "127.0.0.2", addr)
	if resp := other.get(t); resp.StatusCode != 200 {
		t.Fatalf("another client: status %d", resp.StatusCode)
	}
	if resp := first.get(t); resp.StatusCode != 200 {
		t.Fatalf("the first connection again: status %d", resp.StatusCode)
	}
	st := proxy.Stats()
	if st.Denied != 1 || st.Responses.Class4xx != 1 || st.Requests != 4 {
		t.Errorf("stats: denied %d, 4xx %d, requests %d", st.Denied, st.Responses.Class4xx, st.Requests)
	}
}

func TestLimitsClientRateL7(t *testing.T) {
	testutil.CheckLeaks(t)
	clock := newFakeClock()
	lim := &lb.Limits{ClientRate: 1, ClientBurst: 2}
	lim.SetClockForTest(clock.Now)
	proxy := &lb.ReverseProxy{Pool: webPool(t)}
	addr := startLimitedL7(t, proxy, lim, nil)
	c := httpDial(t, "127.0.0.1", addr)
	for i, want := range []int{200, 200, 429} {
		resp := c.get(t)
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if want == 429 && (resp.Header.Get("Retry-After") != "1" || resp.Close) {
			t.Fatalf("429 header %v, close %v; want Retry-After: 1, kept alive", resp.Header, resp.Close)
		}
	}
	// Another client has its own bucket.
	if resp := httpDial(t, "127.0.0.2", addr).get(t); resp.StatusCode != 200 {
		t.Fatalf("another client: status %d", resp.StatusCode)
	}
	clock.Add(500 * time.Millisecond)
	if resp := c.get(t); resp.StatusCode != 429 {
		t.Fatalf("half a token later: status %d", resp.StatusCode)
	}
	clock.Add(500 * time.Millisecond)
	if resp := c.get(t); resp.StatusCode != 200 {
		t.Fatalf("after the refill: status %d", resp.StatusCode)
	}
	if st := lim.Stats(); st.ClientRate != 2 || st.ClientConns != 0 {
		t.Errorf("limit stats %+v", st)
	}
	if st := proxy.Stats(); st.Denied != 2 {
		t.Errorf("Denied = %d, want 2", st.Denied)
	}
}

func TestLimitsClientRateL7WithoutListener(t *testing.T) {
	// Request rates need the ReverseProxy alone: clients are keyed by the
	// request's RemoteAddr.
	testutil.CheckLeaks(t)
	clock := newFakeClock()
	lim := &lb.Limits{ClientRate: 1}
	lim.SetClockForTest(clock.Now)
	url, _ := startL7(t, &lb.ReverseProxy{Pool: webPool(t), Limits: lim}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	for i, want := range []int{200, 429} {
		if code, _, _ := get(t, c, url); code != want {
			t.Fatalf("request %d: status %d, want %d", i, code, want)
		}
	}
	clock.Add(time.Second)
	if code, _, _ := get(t, c, url); code != 200 {
		t.Fatalf("after the refill: status %d", code)
	}
}

func TestLimitsClientRateL4(t *testing.T) {
	testutil.CheckLeaks(t)
	clock := newFakeClock()
	lim := &lb.Limits{ClientRate: 2, ClientBurst: 1}
	lim.SetClockForTest(clock.Now)
	fe, addr := nameFrontend(t, lim, nil)
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("greeting %q", got)
	}
	expectClosed(t, dialFrom(t, "127.0.0.1", addr), "a connection over the rate")
	if got := readName(t, dialFrom(t, "127.0.0.2", addr)); got != "a" {
		t.Fatalf("another client: greeting %q", got)
	}
	clock.Add(500 * time.Millisecond)
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("after the refill: greeting %q", got)
	}
	if st := fe.Stats(); st.Denied != 1 {
		t.Errorf("Denied = %d, want 1", st.Denied)
	}
}

// proxyV1 returns a PROXY v1 header carrying the client src.
func proxyV1(src string) string {
	return "PROXY TCP4 " + src + " 127.0.0.1 40000 80\r\n"
}

func TestLimitsApplyToTheProxyProtocolAddress(t *testing.T) {
	trusted := func(ln net.Listener) net.Listener {
		return &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	}
	t.Run("L4", func(t *testing.T) {
		testutil.CheckLeaks(t)
		fe, addr := nameFrontend(t, &lb.Limits{ClientMaxConns: 1}, trusted)
		// Both come from 127.0.0.1; the headers say they are two clients.
		for _, src := range []string{"192.0.2.1", "192.0.2.2"} {
			c := dialFrom(t, "127.0.0.1", addr)
			io.WriteString(c, proxyV1(src))
			if got := readName(t, c); got != "a" {
				t.Fatalf("client %s: greeting %q", src, got)
			}
		}
		c := dialFrom(t, "127.0.0.1", addr)
		io.WriteString(c, proxyV1("192.0.2.1"))
		expectClosed(t, c, "a second connection of 192.0.2.1")
		if st := fe.Stats(); st.Denied != 1 {
			t.Errorf("Denied = %d, want 1", st.Denied)
		}
	})
	t.Run("L7", func(t *testing.T) {
		testutil.CheckLeaks(t)
		logs := newCollector()
		proxy := &lb.ReverseProxy{Pool: webPool(t), AccessLog: logs}
		addr := startLimitedL7(t, proxy, &lb.Limits{ClientMaxConns: 1}, trusted)
		for i, src := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1"} {
			c := httpDial(t, "127.0.0.1", addr)
			resp := c.roundTrip(t, proxyV1(src)+getReq)
			want := 200
			if i == 2 {
				want = 429
			}
			rec := logs.Next(t)
			if resp.StatusCode != want || rec.Client.Addr().String() != src {
				t.Fatalf("client %s: status %d (want %d), logged as %v", src, resp.StatusCode, want, rec.Client)
			}
		}
	})
}

func TestLimitsAllocs(t *testing.T) {
	skipUnderRace(t)
	pool := webPool(t)
	off := allocsPerProxiedRequest(t, &lb.ReverseProxy{Pool: pool})
	lim := &lb.Limits{ClientMaxConns: 10, ClientRate: 1e9}
	on := allocsPerProxiedRequest(t, &lb.ReverseProxy{Pool: pool, Limits: lim})
	t.Logf("allocations per request: %.0f without limits, %.0f with", off, on)
	// The client's entry exists after the first request; a check is a
	// lookup and a token taken.
	if on != off {
		t.Errorf("limits add %.0f allocations per request, want none", on-off)
	}
}

// syncBuffer is a strings.Builder safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLimitsWarnWithoutConnContext(t *testing.T) {
	testutil.CheckLeaks(t)
	var logs syncBuffer
	proxy := &lb.ReverseProxy{Pool: webPool(t), Limits: &lb.Limits{ClientMaxConns: 1},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	for range 3 {
		if code, _, _ := get(t, c, url); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if n := strings.Count(logs.String(), "ConnContext"); n != 1 {
		t.Errorf("%d warnings about the missing ConnContext, want 1:\n%s", n, logs.String())
	}
}

// TestLimitsClientRateGRPC: a gRPC request over the rate gets a gRPC status
// (UNAVAILABLE, as gRPC maps 429), not a plain-text 429 a gRPC client
// could not read.
func TestLimitsClientRateGRPC(t *testing.T) {
	testutil.CheckLeaks(t)
	clock := newFakeClock()
	lim := &lb.Limits{ClientRate: 1}
	lim.SetClockForTest(clock.Now)
	url, _ := startL7(t, &lb.ReverseProxy{Pool: webPool(t), Limits: lim}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if code, _, _ := get(t, c, url); code != 200 {
		t.Fatalf("first request: status %d", code)
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("Grpc-Status"); resp.StatusCode != 200 || got != "14" {
		t.Fatalf("gRPC request over the rate: %d grpc-status %q, want 200 with grpc-status 14", resp.StatusCode, got)
	}
}

// TestLimitsAdmit checks the admission of connections without an accept
// queue (QUIC): refusals at MaxConns and ClientMaxConns, Busy from half of
// either, and the release when the connection's context ends.
func TestLimitsAdmit(t *testing.T) {
	lim := &lb.Limits{MaxConns: 4, ClientMaxConns: 2}
	a := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:4000"))
	b := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:4000"))
	admit := func(addr net.Addr) (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := lim.Admit(ctx, addr); err != nil {
			cancel()
			return nil, err
		}
		return cancel, nil
	}
	if lim.Busy(a) {
		t.Error("Busy with no connection")
	}
	endA, err := admit(a)
	if err != nil {
		t.Fatal(err)
	}
	if !lim.Busy(a) || lim.Busy(b) {
		t.Errorf("after one of a's 2: Busy(a) %v, Busy(b) %v; want true, false", lim.Busy(a), lim.Busy(b))
	}
	if _, err := admit(a); err != nil {
		t.Fatal(err)
	}
	if _, err := admit(a); !errors.Is(err, lb.ErrLimited) {
		t.Fatalf("a's third connection: %v, want ErrLimited", err)
	}
	if _, err := admit(b); err != nil {
		t.Fatal(err)
	}
	if !lim.Busy(b) {
		t.Error("not Busy with 3 of MaxConns 4 open")
	}
	if _, err := admit(b); err != nil {
		t.Fatal(err)
	}
	c := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.3:4000"))
	if _, err := admit(c); !errors.Is(err, lb.ErrLimited) {
		t.Fatalf("a fifth connection: %v, want ErrLimited", err)
	}
	if s := lim.Stats(); s.Conns != 4 || s.ClientConns != 1 || s.Full != 1 {
		t.Errorf("Stats() = %+v, want Conns 4, ClientConns 1, Full 1", s)
	}
	// Context cancellation releases asynchronously (context.AfterFunc).
	endA()
	testutil.Eventually(t, "a's connection to be released", func() bool { return lim.Stats().Conns == 3 })
	if _, err := admit(c); err != nil {
		t.Errorf("after a's connection ended: %v", err)
	}
	if _, err := admit(a); !errors.Is(err, lb.ErrLimited) {
		t.Errorf("a connection beyond MaxConns again: %v, want ErrLimited", err)
	}
}

// TestLimitsConnRateL4 checks that connections beyond the frontend's
// ConnRate wait in the accept queue and are served later, not closed.
func TestLimitsConnRateL4(t *testing.T) {
	testutil.CheckLeaks(t)
	lim := &lb.Limits{ConnRate: 2, ConnBurst: 1}
	fe, addr := nameFrontend(t, lim, nil)
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("greeting %q", got)
	}
	// The bucket is empty: the next two wait half a second each, from
	// any client.
	waiting := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.2", addr)}
	expectQuiet(t, waiting[0], "a connection beyond ConnRate")
	for i, c := range waiting {
		if got := readName(t, c); got != "a" {
			t.Fatalf("waiting connection %d: greeting %q", i, got)
		}
	}
	st, ls := fe.Stats(), lim.Stats()
	if st.ConnTotal != 3 || st.Denied != 0 {
		t.Errorf("frontend stats: %+v, want 3 connections and none denied", st)
	}
	if ls.ConnRateWaits < 2 || ls.ConnRateRefused != 0 {
		t.Errorf("limit stats: %+v, want at least 2 waits and no refusal", ls)
	}
}

// TestLimitsConnRateL7 checks ConnRate on an http.Server's listener: the
// request of a connection beyond the rate is answered later.
func TestLimitsConnRateL7(t *testing.T) {
	testutil.CheckLeaks(t)
	lim := &lb.Limits{ConnRate: 2, ConnBurst: 1}
	addr := startLimitedL7(t, &lb.ReverseProxy{Pool: webPool(t)}, lim, nil)
	first := httpDial(t, "127.0.0.1", addr)
	if resp := first.get(t); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waiting := httpDial(t, "127.0.0.1", addr)
	if _, err := io.WriteString(waiting, getReq); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, waiting, "a connection beyond ConnRate")
	resp, err := http.ReadResponse(waiting.br, nil)
	if err != nil {
		t.Fatalf("the waiting connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the waiting connection got %d", resp.StatusCode)
	}
	// Requests on an accepted connection are not rate limited.
	for range 3 {
		if resp := first.get(t); resp.StatusCode != 200 {
			t.Fatalf("keep-alive request: status %d", resp.StatusCode)
		}
	}
	if ls := lim.Stats(); ls.ConnRateWaits < 1 {
		t.Errorf("limit stats: %+v, want a wait", ls)
	}
}

// TestLimitsConnRateCloseEndsTheWait checks that closing a frontend ends
// an Accept whose connection waits for a token, closing that connection
// unserved (nameFrontend's cleanup waits for Serve to return).
func TestLimitsConnRateCloseEndsTheWait(t *testing.T) {
	testutil.CheckLeaks(t)
	lim := &lb.Limits{ConnRate: 0.001, ConnBurst: 1}
	fe, addr := nameFrontend(t, lim, nil)
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("greeting %q", got)
	}
	waiting := dialFrom(t, "127.0.0.1", addr)
	testutil.Eventually(t, "Accept to wait for a token", func() bool { return lim.Stats().ConnRateWaits == 1 })
	if !lim.Holding() {
		t.Error("Holding() = false while a connection waits for a token")
	}
	fe.Close()
	if n, err := waiting.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the waiting connection after Close: read %d, %v; want it closed unserved", n, err)
	}
}

// TestLimitsIdleListenerHoldsNothing: with MaxConns 1 and two listeners of
// one frontend, an idle listener holds no slot, so the other serves; and
// Stats counts open connections only.
func TestLimitsIdleListenerHoldsNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	lim := &lb.Limits{MaxConns: 1}
	_, addr := nameFrontend(t, lim, nil)
	nameFrontend(t, lim, nil) // a second frontend sharing lim, whose listener idles
	if n := lim.Stats().Conns; n != 0 {
		t.Fatalf("Stats().Conns = %d with no connection open", n)
	}
	if got := readName(t, dialFrom(t, "127.0.0.1", addr)); got != "a" {
		t.Fatalf("greeting %q", got)
	}
	testutil.Eventually(t, "the connection to hold the slot", func() bool { return lim.Stats().Conns == 1 })
}

// TestLimitsConnRateAdmit checks that Admit, which cannot pause, refuses
// connections beyond ConnRate and admits them again once the bucket
// refills.
func TestLimitsConnRateAdmit(t *testing.T) {
	clock := newFakeClock()
	lim := &lb.Limits{ConnRate: 1, ConnBurst: 2, MaxConns: 10}
	lim.SetClockForTest(clock.Now)
	a := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:4000"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 2 {
		if _, err := lim.Admit(ctx, a); err != nil {
			t.Fatalf("connection %d within the burst: %v", i, err)
		}
	}
	if _, err := lim.Admit(ctx, a); !errors.Is(err, lb.ErrLimited) {
		t.Fatalf("a connection beyond the burst: %v, want ErrLimited", err)
	}
	if s := lim.Stats(); s.ConnRateRefused != 1 || s.Conns != 2 {
		t.Errorf("Stats() = %+v, want ConnRateRefused 1 and the refused one's slot given back", s)
	}
	clock.Add(time.Second)
	if _, err := lim.Admit(ctx, a); err != nil {
		t.Errorf("after the refill: %v", err)
	}
}
