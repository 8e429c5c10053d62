package health_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// localHeader writes a PROXY v2 LOCAL header, as lb's PROXY writers do
// for a nil ConnInfo.
func localHeader(t *testing.T) lb.HeaderFunc {
	return func(w io.Writer, info *lb.ConnInfo, s *lb.Server) error {
		if info != nil {
			t.Errorf("health check header called with client info %+v", info)
		}
		_, err := w.Write([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
		return err
	}
}

// proxyServer accepts PROXY-protocol connections (the header is
// required), records the command of each header, and answers "PING\r\n"
// with "+PONG\r\n".
type proxyServer struct {
	addr string
	mu   sync.Mutex
	cmds []proxyproto.ProtocolVersionAndCommand
}

func startProxyServer(t *testing.T) *proxyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: ln, ReadHeaderTimeout: time.Second}
	s := &proxyServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 6)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING\r\n" {
					return
				}
				if h := c.(*proxyproto.Conn).ProxyHeader(); h != nil {
					s.mu.Lock()
					s.cmds = append(s.cmds, h.Command)
					s.mu.Unlock()
				}
				c.Write([]byte("+PONG\r\n"))
			}()
		}
	}()
	t.Cleanup(func() { pl.Close(); wg.Wait() })
	return s
}

func (s *proxyServer) commands() []proxyproto.ProtocolVersionAndCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]proxyproto.ProtocolVersionAndCommand(nil), s.cmds...)
}

func waitState(t *testing.T, p *lb.Pool, name string, within time.Duration, ok func(lb.State) bool) (lb.State, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		st, _ := state(p, name)
		if ok(st) {
			return st, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s still %v after %v", name, st, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxyHeaderAndCheckPort checks through a Monitor that the check
// connection is opened with the pool's Dial and starts with the LOCAL form
// of the pool's PROXY header, on the check port.
func TestProxyHeaderAndCheckPort(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := startProxyServer(t)
	_, port, _ := net.SplitHostPort(srv.addr)
	closed := testutil.ClosedAddr(t)
	m := &health.Monitor{
		Probe:    health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")},
		Interval: 50 * time.Millisecond,
	}
	var dials atomic.Int64
	pool := &lb.Pool{
		Name: "p", HealthChecker: m, ProxyHeader: localHeader(t), InitialState: lb.StateDown,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	err := pool.Update([]lb.Server{
		{Name: "meta", Addr: closed, Meta: map[string]string{health.MetaCheckPort: port}},
		{Name: "plain", Addr: closed},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitState(t, pool, "meta", 3*time.Second, func(s lb.State) bool { return s == lb.StateUp })
	waitState(t, pool, "plain", 3*time.Second, func(s lb.State) bool { return s == lb.StateDown })
	n := len(srv.commands())
	testutil.Eventually(t, "three more rounds of checks", func() bool { return len(srv.commands()) >= n+3 })
	if st, reason := state(pool, "plain"); st != lb.StateDown || !strings.Contains(reason, "connection refused") {
		t.Fatalf("plain: %v %q", st, reason)
	}
	cmds := srv.commands()
	if len(cmds) == 0 {
		t.Fatal("no check reached the server")
	}
	for _, c := range cmds {
		if c != proxyproto.LOCAL {
			t.Fatalf("PROXY command %v, want LOCAL", c)
		}
	}
	if dials.Load() == 0 {
		t.Fatal("checks did not dial through the pool's Dial")
	}
}

// TestNoProxyHeader checks that a Monitor with NoProxyHeader leaves the
// pool's PROXY header off its checks: a server that does not speak PROXY
// protocol passes them.
func TestNoProxyHeader(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 6)
			if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "PING\r\n" {
				c.Write([]byte("+PONG\r\n"))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	m := &health.Monitor{
		Probe:         health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")},
		Interval:      50 * time.Millisecond,
		NoProxyHeader: true,
	}
	pool := &lb.Pool{Name: "p", HealthChecker: m, ProxyHeader: localHeader(t), InitialState: lb.StateDown}
	if err := pool.Update([]lb.Server{{Name: "a", Addr: ln.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitState(t, pool, "a", 3*time.Second, func(s lb.State) bool { return s == lb.StateUp })
}

// TestKilledServerLeavesAndReturns runs a Pool with a Monitor over real
// backends: a killed server stops receiving new requests within
// fall × interval + timeout, and a restarted one gets requests again within
// rise × transient interval. The bounds get a fixed allowance for
// scheduling on a busy machine; the exact timing is checked in
// TestStateMachineTiming.
func TestKilledServerLeavesAndReturns(t *testing.T) {
	testutil.CheckLeaks(t)
	const (
		interval  = 300 * time.Millisecond
		transient = 100 * time.Millisecond
		timeout   = 200 * time.Millisecond
		fall      = 3
		rise      = 2
		allowance = 300 * time.Millisecond
	)
	a := testutil.HTTPBackend(t, "a")
	b := testutil.HTTPBackend(t, "b")
	var mu sync.Mutex
	var evs []health.Event
	m := &health.Monitor{
		Probe:    health.HTTP{Path: "/"},
		Interval: interval, TransientInterval: transient, Timeout: timeout,
		Fall: fall, Rise: rise,
		OnChange: func(e health.Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() },
	}
	pool := &lb.Pool{Name: "web", HealthChecker: m}
	if err := pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}, {Name: "b", Addr: b.Addr}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()

	proxy := &lb.ReverseProxy{Pool: pool}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: proxy, ReadHeaderTimeout: time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	served := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			resp, err := client.Get("http://" + ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[resp.Header.Get("X-Backend")+" "+strconv.Itoa(resp.StatusCode)]++
		}
		return seen
	}
	testutil.Eventually(t, "a first check of both", func() bool { return a.Requests() > 0 && b.Requests() > 0 })
	if got := served(10); got["a 200"] != 5 || got["b 200"] != 5 {
		t.Fatalf("before: %v", got)
	}

	b.Close()
	_, took := waitState(t, pool, "b", 5*time.Second, func(s lb.State) bool { return !s.Pickable() })
	t.Logf("killed server out after %v (bound %v)", took, fall*interval+timeout)
	if took > fall*interval+timeout+allowance {
		t.Errorf("killed server out after %v, want within %v", took, fall*interval+timeout)
	}
	if got := served(10); got["a 200"] != 10 {
		t.Fatalf("after the kill: %v", got)
	}

	b.Restart(t)
	_, took = waitState(t, pool, "b", 5*time.Second, func(s lb.State) bool { return s == lb.StateUp })
	t.Logf("restarted server back after %v (bound %v)", took, rise*transient)
	if took > rise*transient+allowance {
		t.Errorf("restarted server back after %v, want within %v", took, rise*transient)
	}
	if got := served(10); got["b 200"] == 0 {
		t.Fatalf("after the restart: %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	var path []string
	for _, e := range evs {
		path = append(path, e.To.String())
	}
	if strings.Join(path, ",") != "going down,down,going up,up" {
		t.Fatalf("transitions %q", path)
	}
	if !strings.Contains(evs[1].Reason, "connection refused") {
		t.Fatalf("down reason %q", evs[1].Reason)
	}
}

// TestShutdownOnDownThroughMonitor: the check port of an L4 server stops
// answering while its data port still works; the Monitor takes the server
// down and the Pool, with ShutdownOnDown, closes the open session.
func TestShutdownOnDownThroughMonitor(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	checkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // accepts and closes: enough for a TCP check
		for {
			c, err := checkLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, checkPort, _ := net.SplitHostPort(checkLn.Addr().String())
	m := &health.Monitor{Probe: health.TCP{}, Interval: 50 * time.Millisecond, TransientInterval: 20 * time.Millisecond, Fall: 2}
	pool := &lb.Pool{Name: "l4", HealthChecker: m, ShutdownOnDown: true}
	if err := pool.Update([]lb.Server{{Name: "a", Addr: echo.Addr, Meta: map[string]string{health.MetaCheckPort: checkPort}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &lb.TCPFrontend{Backend: pool}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()

	c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	checkLn.Close() // the check fails from now on; the data port still works
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("session still open: read %q", buf[:n])
	}
	if st, reason := state(pool, "a"); st != lb.StateDown || !strings.Contains(reason, "connection refused") {
		t.Fatalf("state %v %q", st, reason)
	}
}
