package proxyproto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// proxyListen wraps a loopback listener in l and closes it in cleanup.
func proxyListen(t *testing.T, l *proxyproto.Listener) *proxyproto.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	l.Listener = ln
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptOne accepts one connection within 5 seconds.
func acceptOne(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	return acceptAsync(ln)(t)
}

// acceptAsync starts one Accept on ln at once and returns a function that
// waits 5 seconds for its connection.
func acceptAsync(ln net.Listener) func(t *testing.T) net.Conn {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	return func(t *testing.T) net.Conn {
		t.Helper()
		select {
		case r := <-ch:
			must(t, r.err)
			t.Cleanup(func() { r.c.Close() })
			return r.c
		case <-time.After(5 * time.Second):
			ln.Close() // ends the Accept above
			<-ch
			t.Fatal("Accept did not return")
			return nil
		}
	}
}

func v2Header(t testing.TB, src, dst string) []byte {
	var buf bytes.Buffer
	must(t, proxyproto.V2(proxyproto.V2Options{})(&buf, &lb.ConnInfo{
		Remote: netip.MustParseAddrPort(src), Local: netip.MustParseAddrPort(dst)}, nil))
	return buf.Bytes()
}

func TestListenerAccepts(t *testing.T) {
	testutil.CheckLeaks(t)
	tests := []struct {
		name       string
		trusted    []netip.Prefix
		policy     proxyproto.Policy
		send       []byte
		wantRemote string // "" means the socket's address
		wantLocal  string
		wantData   string
	}{
		{"v1", loopback, proxyproto.Reject, []byte("PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\nhello"),
			"192.0.2.7:50123", "198.51.100.1:443", "hello"},
		{"v1 ipv6", loopback, proxyproto.Reject, []byte("PROXY TCP6 2001:db8::7 2001:db8::1 50123 443\r\nhello"),
			"[2001:db8::7]:50123", "[2001:db8::1]:443", "hello"},
		{"v2", loopback, proxyproto.Reject, append(v2Header(t, "192.0.2.7:50123", "198.51.100.1:443"), "hello"...),
			"192.0.2.7:50123", "198.51.100.1:443", "hello"},
		{"v2 ipv6", loopback, proxyproto.Reject, append(v2Header(t, "[2001:db8::7]:50123", "[2001:db8::1]:443"), "hello"...),
			"[2001:db8::7]:50123", "[2001:db8::1]:443", "hello"},
		{"v2 local keeps the socket", loopback, proxyproto.Reject,
			append([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"), "hello"...), "", "", "hello"},
		{"v1 unknown keeps the socket", loopback, proxyproto.Reject, []byte("PROXY UNKNOWN\r\nhello"), "", "", "hello"},
		{"untrusted under UseSocket", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, proxyproto.UseSocket,
			[]byte("PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"), "", "", "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := proxyListen(t, &proxyproto.Listener{Trusted: tt.trusted, Untrusted: tt.policy})
			c := dial(t, l.Addr().String())
			defer c.Close()
			_, err := c.Write(tt.send)
			must(t, err)
			sc := acceptOne(t, l)
			wantRemote, wantLocal := tt.wantRemote, tt.wantLocal
			if wantRemote == "" {
				wantRemote, wantLocal = c.LocalAddr().String(), c.RemoteAddr().String()
			}
			if got := sc.RemoteAddr().String(); got != wantRemote {
				t.Errorf("RemoteAddr = %s, want %s", got, wantRemote)
			}
			if got := sc.LocalAddr().String(); got != wantLocal {
				t.Errorf("LocalAddr = %s, want %s", got, wantLocal)
			}
			if nc := lb.NewConn(sc, "fe"); nc.Info.Remote.String() != wantRemote {
				t.Errorf("ConnInfo.Remote = %s, want %s", nc.Info.Remote, wantRemote)
			}
			sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, len(tt.wantData))
			_, err = io.ReadFull(sc, got)
			must(t, err)
			if string(got) != tt.wantData {
				t.Errorf("data = %q, want %q", got, tt.wantData)
			}
		})
	}
}

// badPeers are trusted peers that must be rejected: each writes its bytes
// and then stays open (silent) or closes.
var badPeers = []struct {
	name  string
	send  []byte
	close bool
}{
	{"no header", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
	{"malformed v1", []byte("PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n"), false},
	{"v1 without end", []byte("PROXY TCP4 " + strings.Repeat("1", 200)), false},
	{"truncated v2", []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00"), true},
	{"oversized v2", append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x0f\xa0"), make([]byte, 4000)...), false},
	{"silent", nil, false},
	{"closed at once", nil, true},
}

// TestListenerRejectsBadPeers: each bad trusted peer is closed and
// Accept goes on to the next, good, connection; a silent peer does not
// delay it: the good peer is accepted while the silent one's header is
// still being waited for (the header timeout is far beyond the test's).
func TestListenerRejectsBadPeers(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, bp := range badPeers {
		t.Run(bp.name, func(t *testing.T) {
			l := proxyListen(t, &proxyproto.Listener{Trusted: loopback, HeaderTimeout: time.Minute, MaxHeader: 1024})
			accepted := acceptAsync(l)
			bad := dial(t, l.Addr().String())
			defer bad.Close()
			if len(bp.send) > 0 {
				bad.Write(bp.send)
			}
			if bp.close {
				bad.(*net.TCPConn).CloseWrite()
			}
			silent := bp.name == "silent"
			if silent {
				testutil.Eventually(t, "the silent peer's header read", func() bool { return proxyproto.Pending(l) == 1 })
			}
			good := dial(t, l.Addr().String())
			defer good.Close()
			_, err := good.Write([]byte("PROXY TCP4 192.0.2.8 198.51.100.1 4000 80\r\n"))
			must(t, err)
			sc := accepted(t)
			if got := sc.RemoteAddr().String(); got != "192.0.2.8:4000" {
				t.Fatalf("accepted %s, want the good peer", got)
			}
			if silent {
				if n := proxyproto.Pending(l); n != 1 {
					t.Fatalf("%d headers being read after the good peer's, want the silent peer's", n)
				}
				l.Close() // ends the silent peer's wait
			}
			// The bad peer is closed by the listener.
			expectClosed(t, bad)
		})
	}
}

func TestListenerRejectsUntrusted(t *testing.T) {
	testutil.CheckLeaks(t)
	l := proxyListen(t, &proxyproto.Listener{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	c := dial(t, l.Addr().String())
	defer c.Close()
	wait := acceptAll(l)
	c.Write([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"))
	expectClosed(t, c)
	l.Close()
	wait()
}

// expectClosed reads c until the listener closes it (EOF, or a reset when
// it closed with unread data).
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer %s not closed: %v", c.LocalAddr(), err)
	}
}

// acceptAll accepts from l until it is closed, closing what it gets, and
// returns a function that waits for the end.
func acceptAll(l net.Listener) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() { <-done }
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestListenerNoLeaks: bad trusted peers and rejected untrusted ones
// leave no goroutine and no descriptor.
func TestListenerNoLeaks(t *testing.T) {
	testutil.CheckLeaks(t)
	before := openFDs(t)
	func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		l := &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			HeaderTimeout: 200 * time.Millisecond, MaxHeader: 512}
		wait := acceptAll(l)
		defer wait()
		defer l.Close()
		var clients []net.Conn
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		for _, bp := range badPeers {
			for range 3 {
				c := dial(t, ln.Addr().String())
				clients = append(clients, c)
				c.Write(bp.send)
				if bp.close {
					c.(*net.TCPConn).CloseWrite()
				}
			}
		}
		// Untrusted: from 127.0.0.2.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		for range 3 {
			c, err := d.Dial("tcp", ln.Addr().String())
			must(t, err)
			clients = append(clients, c)
		}
		// Every bad peer gets closed by the listener, within the header
		// timeout.
		for _, c := range clients {
			expectClosed(t, c)
		}
	}()
	expectFDs(t, before)
}

// expectFDs waits until no more than before descriptors are open.
func expectFDs(t *testing.T, before int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d descriptors open (as before)", before), func() bool { return openFDs(t) <= before })
}

// TestListenerCloseEndsHeaderReads: Close closes the connections
// whose header is being read, without waiting for their header timeout,
// and leaves no goroutine and no descriptor.
func TestListenerCloseEndsHeaderReads(t *testing.T) {
	testutil.CheckLeaks(t)
	before := openFDs(t)
	func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		l := &proxyproto.Listener{Listener: ln, Trusted: loopback, HeaderTimeout: time.Hour}
		wait := acceptAll(l)
		defer wait()
		defer l.Close()
		// A peer still sending its header when the listener closes: a v2
		// signature cut short, which the parser waits to complete (a v1
		// line cut short is rejected at once).
		late := dial(t, ln.Addr().String())
		defer late.Close()
		late.Write([]byte("\r\n\r\n\x00\r\nQU"))
		testutil.Eventually(t, "the header read", func() bool { return proxyproto.Pending(l) == 1 })
		closed := make(chan error, 1)
		go func() { closed <- l.Close() }()
		select {
		case err := <-closed:
			must(t, err)
		case <-time.After(5 * time.Second):
			late.Close() // ends the header read, and so Close
			<-closed
			t.Fatal("Close waits for a header in progress")
		}
		expectClosed(t, late)
	}()
	expectFDs(t, before)
}

// TestListenerForwardedFor: behind a trusted upstream, the carried
// client address is the one X-Forwarded-For names and the one the PROXY
// header sent onward names, at L7 and at L4.
func TestListenerForwardedFor(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend.Addr}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, l, time.Second, proxy) }()
	defer func() { cancel(); must(t, <-done) }()

	for _, tc := range []struct{ header, want string }{
		{"PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n", "192.0.2.7"},
		{string(v2Header(t, "[2001:db8::7]:50123", "[2001:db8::1]:443")), "2001:db8::7"},
	} {
		c := dial(t, l.Addr().String())
		fmt.Fprintf(c, "%sGET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tc.header)
		resp, err := io.ReadAll(c)
		c.Close()
		must(t, err)
		if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
			t.Fatalf("response %q", resp)
		}
		if got := backend.LastHeader().Get("X-Forwarded-For"); got != tc.want {
			t.Fatalf("X-Forwarded-For = %q, want %q", got, tc.want)
		}
	}
}

func TestListenerL4Onward(t *testing.T) {
	testutil.CheckLeaks(t)
	addr, headers := headerServer(t)
	for _, hf := range []lb.HeaderFunc{proxyproto.V1(), proxyproto.V2(proxyproto.V2Options{})} {
		pool := &lb.Pool{Name: "p", ProxyHeader: hf}
		must(t, pool.Update([]lb.Server{{Addr: addr}}))
		l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
		srv := &lb.TCPFrontend{Name: "fe", Backend: pool}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		c := dial(t, l.Addr().String())
		c.Write(v2Header(t, "[2001:db8::7]:50123", "[2001:db8::1]:443"))
		select {
		case h := <-headers:
			src, _, ok := h.TCPAddrs()
			if !ok || src.String() != "[2001:db8::7]:50123" {
				t.Fatalf("header sent onward %+v", h)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no header")
		}
		c.Close()
		srv.Close()
		if err := <-done; !errors.Is(err, lb.ErrFrontendClosed) {
			t.Fatalf("Serve: %v", err)
		}
	}
}

// pipeConn is one end of net.Pipe with TCP addresses, for the fuzz target.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234} }
func (pipeConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

func FuzzListenerHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\nGET /"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(append(v2Header(f, "[2001:db8::7]:50123", "[2001:db8::1]:443"), "data"...))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	l := &proxyproto.Listener{Trusted: loopback, HeaderTimeout: time.Second, MaxHeader: 512}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Write(in)
			b.Close()
		}()
		c, err := proxyproto.ReadHeader(l, pipeConn{a})
		if err == nil {
			if lb.AddrPortOf(c.RemoteAddr()) == (netip.AddrPort{}) {
				t.Fatalf("accepted with remote %v", c.RemoteAddr())
			}
			io.Copy(io.Discard, c) // the rest reads back
		} else if !errors.Is(err, proxyproto.ErrBadHeader) {
			t.Fatalf("error %v does not wrap ErrBadHeader", err)
		}
		a.Close()
		wg.Wait()
	})
}

// memConn is a net.Conn reading from r, for the reception benchmark.
type memConn struct {
	pipeConn
	r *bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)        { return c.r.Read(p) }
func (c *memConn) SetReadDeadline(t time.Time) error { return nil }

// clientRecorder is an Affinity that records the clients it is asked
// about, as a source-IP stickiness table would key them.
type clientRecorder struct {
	mu      sync.Mutex
	clients []netip.AddrPort
}

func (r *clientRecorder) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	r.mu.Lock()
	r.clients = append(r.clients, info.Client)
	r.mu.Unlock()
	return nil, false
}

func (r *clientRecorder) Pin(lb.PickInfo, *lb.Server) {}

func (r *clientRecorder) last() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.clients) == 0 {
		return netip.AddrPort{}
	}
	return r.clients[len(r.clients)-1]
}

// TestListenerStickiness: balancing and stickiness see the carried
// client, at L4 and at L7.
func TestListenerStickiness(t *testing.T) {
	testutil.CheckLeaks(t)
	want := netip.MustParseAddrPort("192.0.2.7:50123")
	header := "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"

	t.Run("L4", func(t *testing.T) {
		rec := &clientRecorder{}
		echo := testutil.EchoServer(t)
		pool := &lb.Pool{Name: "tcp", Affinity: rec}
		must(t, pool.Update([]lb.Server{{Addr: echo.Addr}}))
		l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
		srv := &lb.TCPFrontend{Name: "fe", Backend: pool}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		defer func() { srv.Close(); <-done }()
		c := dial(t, l.Addr().String())
		defer c.Close()
		io.WriteString(c, header+"ping")
		got := make([]byte, 4)
		_, err := io.ReadFull(c, got)
		must(t, err)
		if rec.last() != want {
			t.Fatalf("affinity saw %v, want %v", rec.last(), want)
		}
	})
	t.Run("L7", func(t *testing.T) {
		rec := &clientRecorder{}
		backend := testutil.HTTPBackend(t, "a")
		pool := &lb.Pool{Name: "web", Affinity: rec}
		must(t, pool.Update([]lb.Server{{Addr: backend.Addr}}))
		proxy := &lb.ReverseProxy{Pool: pool}
		l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
		srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- lb.Serve(ctx, srv, l, time.Second, proxy) }()
		defer func() { cancel(); <-done }()
		c := dial(t, l.Addr().String())
		defer c.Close()
		io.WriteString(c, header+"GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		_, err := io.ReadAll(c)
		must(t, err)
		if rec.last() != want {
			t.Fatalf("affinity saw %v, want %v", rec.last(), want)
		}
	})
}

// TestListenerL4KeepsBytes: the bytes that came with the header and
// those after it reach the server in order, through the splice path.
func TestListenerL4KeepsBytes(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "tcp"}
	must(t, pool.Update([]lb.Server{{Addr: echo.Addr}}))
	l := proxyListen(t, &proxyproto.Listener{Trusted: loopback})
	srv := &lb.TCPFrontend{Name: "fe", Backend: pool}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()
	c := dial(t, l.Addr().String())
	defer c.Close()
	first := strings.Repeat("a", 100)
	io.WriteString(c, "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"+first)
	second := strings.Repeat("b", 100000)
	go io.WriteString(c, second)
	got := make([]byte, len(first)+len(second))
	_, err := io.ReadFull(c, got)
	must(t, err)
	if string(got) != first+second {
		t.Fatalf("echo differs: %q...", got[:120])
	}
}
