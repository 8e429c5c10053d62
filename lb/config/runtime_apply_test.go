package config_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestApplyKeepsListener changes ACLs, routes and servers of an HTTP
// frontend: a keep-alive connection opened before the change carries the
// requests after it, which see the new configuration.
func TestApplyKeepsListener(t *testing.T) {
	web := httpServers(t, "web", nil, "127.0.0.2", "127.0.0.3")
	api := httpServers(t, "api", nil, "127.0.0.4")
	port := freePort(t)
	doc := func(pool, extra string) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s},
		    {"id": "api", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}] %s}`,
			web.port, pool, api.port, api.pool(), port, extra)
	}
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, doc(`["127.0.0.2"]`, ""))

	client := newClient(t, &http.Transport{MaxConnsPerHost: 1})
	var conns sync.Map
	fetch := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { conns.Store(i.Conn.LocalAddr().String(), true) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		return resp.StatusCode, b.String()
	}
	if code, body := fetch("/admin"); code != 200 || body != "web 127.0.0.2" {
		t.Fatalf("before: %d %q", code, body)
	}
	apply(t, rt, doc(`["127.0.0.2", "127.0.0.3"]`, `,
	  "acls": [{"id": "a", "frontend_id": "f", "index": 0,
	    "match": {"http_filter": "path_begin", "http_filter_value": ["/admin"]}, "action": {"type": "deny"}}],
	  "routes": [{"id": "r", "frontend_id": "f", "backend_id": "api", "match": {"path_begin": "/api"}}]`))
	if code, _ := fetch("/admin"); code != http.StatusForbidden {
		t.Errorf("the new ACL: %d, want 403", code)
	}
	if _, body := fetch("/api"); body != "api 127.0.0.4" {
		t.Errorf("the new route: %q", body)
	}
	seen := map[string]bool{}
	for range 4 {
		_, body := fetch("/")
		seen[body] = true
	}
	if !seen["web 127.0.0.3"] {
		t.Errorf("the new server got no request: %v", seen)
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("the requests used %d client connections, want the one opened before the change", n)
	}
}

// TestApplyKeepsServerState adds a server to a backend whose other server
// is down: that server stays down and the counters of the one up survive.
func TestApplyKeepsServerState(t *testing.T) {
	web := httpServers(t, "web", nil, "127.0.0.2")
	port := freePort(t)
	var mu sync.Mutex
	var events []config.ServerEvent
	rt := newRuntime(t, config.RuntimeOptions{OnServerEvent: func(e config.ServerEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	doc := func(pool string) string {
		// 127.0.0.3 has nothing listening at the port: its checks fail.
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s,
		    "health_check": {"check_delay": 20, "transient_check_delay": "0.02s", "check_max_retries": 1}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}]}`, web.port, pool, port)
	}
	apply(t, rt, doc(`["127.0.0.2", "127.0.0.3"]`))
	state := func(ip string) config.ServerStat {
		stats, err := rt.ServerStats("web")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stats {
			if s.IP == ip {
				return s
			}
		}
		return config.ServerStat{}
	}
	testutil.Eventually(t, "127.0.0.3 down", func() bool { return state("127.0.0.3").ServerState == "stopped" })
	client := newClient(t, nil)
	for range 3 {
		if code, _, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	before := rt.Pool("web")
	total := func() uint64 {
		for _, s := range rt.Pool("web").Stats().Servers {
			if s.Name == "127.0.0.2" {
				return s.Total
			}
		}
		return 0
	}
	if total() < 3 {
		t.Fatalf("127.0.0.2 served %d sessions, want 3", total())
	}
	apply(t, rt, doc(`["127.0.0.2", "127.0.0.3", "127.0.0.4"]`))
	if rt.Pool("web") != before {
		t.Fatal("a change of servers replaced the pool")
	}
	if s := state("127.0.0.3"); s.ServerState != "stopped" || s.LastHealthCheckStatus != "failed" {
		t.Errorf("127.0.0.3 after Apply: %+v, want still stopped", s)
	}
	if total() < 3 {
		t.Errorf("127.0.0.2's counters restarted: %d", total())
	}
	// Events are delivered off the health checker's path: wait for it.
	testutil.Eventually(t, "an event for 127.0.0.3 going down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.IP == "127.0.0.3" && e.To == "stopped" && e.BackendID == "web" && e.LBID == "lb" {
				return true
			}
		}
		return false
	})
}

// TestApplyAdminStates drains and puts servers in maintenance through the
// lbkit extension, with events and backend stats.
func TestApplyAdminStates(t *testing.T) {
	web := httpServers(t, "web", nil, "127.0.0.2", "127.0.0.3")
	port := freePort(t)
	var mu sync.Mutex
	var events []string
	rt := newRuntime(t, config.RuntimeOptions{OnServerEvent: func(e config.ServerEvent) {
		mu.Lock()
		events = append(events, e.IP+" "+e.From+">"+e.To)
		mu.Unlock()
	}})
	doc := func(servers string) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s,
		    "lbkit": {"servers": [%s]}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}]}`, web.port, web.pool(), servers, port)
	}
	client := newClient(t, nil)
	only := func(want string) {
		t.Helper()
		for range 4 {
			if _, body, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", port)); body != want {
				t.Fatalf("reached %q, want only %q", body, want)
			}
		}
	}
	apply(t, rt, doc(`{"ip": "127.0.0.3", "admin_state": "drain"}`))
	only("web 127.0.0.2")
	apply(t, rt, doc(`{"ip": "127.0.0.2", "admin_state": "maint"}, {"ip": "127.0.0.3", "weight": 2}`))
	only("web 127.0.0.3")
	apply(t, rt, doc(`{"ip": "127.0.0.3", "weight": 0}`))
	only("web 127.0.0.2")
	stats, err := rt.ServerStats("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].ServerState != "running" || stats[1].ServerState != "stopping" || stats[1].AdminState != config.AdminDrain || stats[1].Weight != 0 {
		t.Errorf("backend stats: %+v", stats)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"127.0.0.3 running>stopping", "127.0.0.2 running>stopped", "127.0.0.3 stopping>running", "127.0.0.2 stopped>running", "127.0.0.3 running>stopping"}
	if strings.Join(events, ", ") != strings.Join(want, ", ") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(events, ", "), strings.Join(want, ", "))
	}
}

// TestApplyDrains removes a server and a frontend while TCP sessions are
// open through them: the sessions keep working, new ones go elsewhere or
// are refused, and the removed frontend's sessions are closed after the
// drain grace.
func TestApplyDrains(t *testing.T) {
	testutil.CheckLeaks(t)
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2", "127.0.0.3")
	p1, p2 := freePort(t), freePort(t)
	doc := func(pool string, second bool) string {
		fe := fmt.Sprintf(`{"id": "f1", "inbound_port": %d, "backend_id": "b"}`, p1)
		if second {
			fe += fmt.Sprintf(`, {"id": "f2", "inbound_port": %d, "backend_id": "b"}`, p2)
		}
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "tcp", "forward_port": %d, "pool": %s}],
		  "frontends": [%s]}`, tcp.port, pool, fe)
	}
	rt := newRuntime(t, config.RuntimeOptions{DrainGrace: 500 * time.Millisecond})
	apply(t, rt, doc(`["127.0.0.2"]`, true))
	open := func(port int) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if line, err := r.ReadString('\n'); err != nil || line != "tcp 127.0.0.2\n" {
			t.Fatalf("greeting %q, %v", line, err)
		}
		return c, r
	}
	echo := func(c net.Conn, r *bufio.Reader) error {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err == nil && line != "ping\n" {
			err = fmt.Errorf("echo %q", line)
		}
		return err
	}
	c1, r1 := open(p1)
	c2, r2 := open(p2)
	apply(t, rt, doc(`["127.0.0.3"]`, false))
	if err := echo(c1, r1); err != nil {
		t.Errorf("a session on the removed server broke: %v", err)
	}
	if err := echo(c2, r2); err != nil {
		t.Errorf("a session on the removed frontend broke at once: %v", err)
	}
	if got, err := greet(fmt.Sprintf("127.0.0.1:%d", p1), nil); got != "tcp 127.0.0.3" {
		t.Errorf("a new session reached %q (%v), want the remaining server", got, err)
	}
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p2)); err == nil {
		t.Error("the removed frontend still accepts")
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r2.ReadString('\n'); err == nil {
		t.Error("the removed frontend's session outlived the drain grace")
	}
	stats, _ := rt.ServerStats("b")
	if len(stats) != 1 || stats[0].IP != "127.0.0.3" {
		t.Errorf("backend stats list %+v, want the remaining server", stats)
	}
	if err := echo(c1, r1); err != nil {
		t.Errorf("the session on the removed server, through the frontend that stays, broke: %v", err)
	}
}

// TestApplyRebuildsServerOnSameSocket changes a setting the frontend's
// server is built with (timeout_client): the port keeps accepting, new
// connections are served, and an open session finishes on the old server.
func TestApplyRebuildsServerOnSameSocket(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	port := freePort(t)
	doc := func(timeout int) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "tcp", "forward_port": %d, "pool": %s}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b", "timeout_client": %d}]}`, tcp.port, tcp.pool(), port, timeout)
	}
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, doc(5000))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	before := rt.Addrs(int32(port))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	apply(t, rt, doc(6000))
	if got := rt.Addrs(int32(port)); len(got) != 1 || got[0] != before[0] {
		t.Errorf("the listener changed: %v, then %v", before, got)
	}
	if got, err := greet(addr, nil); got != "tcp 127.0.0.2" {
		t.Errorf("new session: %q, %v", got, err)
	}
	c.Write([]byte("x\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "x\n" {
		t.Errorf("the session open before the rebuild: %q, %v", line, err)
	}
}

// TestCloseEndsEarlierDrains: a frontend removed by an Apply drains its
// sessions for DrainGrace, but Close, once its context ends, closes them
// too instead of waiting out the grace.
func TestCloseEndsEarlierDrains(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	p1, p2 := freePort(t), freePort(t)
	doc := func(second bool) string {
		fe := fmt.Sprintf(`{"id": "f1", "inbound_port": %d, "backend_id": "b"}`, p1)
		if second {
			fe += fmt.Sprintf(`, {"id": "f2", "inbound_port": %d, "backend_id": "b"}`, p2)
		}
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "tcp", "forward_port": %d, "pool": ["127.0.0.2"]}],
		  "frontends": [%s]}`, tcp.port, fe)
	}
	const grace = time.Minute
	rt := config.NewRuntime(config.RuntimeOptions{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, DrainGrace: grace})
	apply(t, rt, doc(true))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "tcp 127.0.0.2\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	apply(t, rt, doc(false)) // f2 drains its session

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(grace / 4):
		t.Fatal("Close waits out the drain grace of a frontend removed earlier")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("the drained session outlived Close")
	}
}

// TestApplyForwardPortKeepsPoolAndMovesChecks changes a backend's
// forward_port, keeping the rest of its document as an API update does:
// the pool stays, and its health checks follow the servers to the new
// port.
func TestApplyForwardPortKeepsPoolAndMovesChecks(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	closed := freePort(t) // nothing listens there on 127.0.0.2
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	d := load(t, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "tcp", "forward_port": %d, "pool": ["127.0.0.2"],
	    "health_check": {"check_delay": 20, "transient_check_delay": "0.02s", "check_timeout": 200, "check_max_retries": 1}}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, closed, port))
	if err := rt.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		st, err := rt.ServerStats("b")
		if err != nil || len(st) != 1 {
			t.Fatalf("server stats %+v, %v", st, err)
		}
		return st[0].ServerState
	}
	testutil.Eventually(t, "the server on a closed port down", func() bool { return state() == "stopped" })
	pool := rt.Pool("b")

	d = d.Clone()
	d.Backends[0].ForwardPort = int32(tcp.port)
	if err := rt.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if rt.Pool("b") != pool {
		t.Error("a change of forward_port built a new pool")
	}
	testutil.Eventually(t, "the server checked on its new port up", func() bool { return state() == "running" })
	if got, err := greet(fmt.Sprintf("127.0.0.1:%d", port), nil); got != "tcp 127.0.0.2" {
		t.Errorf("through the frontend: %q, %v", got, err)
	}
}

// TestApplyRebuiltPoolKeepsDownServers rebuilds a pool (a new
// check_timeout) while its server is down: the new pool starts with the
// server down rather than up, before its own checks have a verdict.
func TestApplyRebuiltPoolKeepsDownServers(t *testing.T) {
	// A server that accepts and never answers: a check fails at its
	// timeout.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	port, inbound := ln.Addr().(*net.TCPAddr).Port, freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	doc := func(timeout int) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2"],
		    "health_check": {"http_config": {"uri": "/health"}, "check_delay": 20, "check_timeout": %d, "check_max_retries": 1}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, port, timeout, inbound)
	}
	state := func() string {
		st, err := rt.ServerStats("b")
		if err != nil || len(st) != 1 {
			t.Fatalf("server stats %+v, %v", st, err)
		}
		return st[0].ServerState
	}
	apply(t, rt, doc(50))
	testutil.Eventually(t, "the silent server down", func() bool { return state() == "stopped" })
	pool := rt.Pool("b")
	apply(t, rt, doc(10000)) // its first check takes 10 s to fail
	if rt.Pool("b") == pool {
		t.Fatal("a new check_timeout kept the pool")
	}
	if got := state(); got != "stopped" {
		t.Errorf("the down server is %q in the rebuilt pool, want stopped", got)
	}
}

// TestApplyServerSettingsMatchAddresses: an lbkit.servers entry applies to
// the pool entry of the same address however it is spelt, as validation
// matches them.
func TestApplyServerSettingsMatchAddresses(t *testing.T) {
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "tcp", "forward_port": 9, "pool": ["2001:db8::1"],
	    "lbkit": {"servers": [{"ip": "2001:DB8:0::1", "admin_state": "maint"}]}}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, freePort(t)))
	st, err := rt.ServerStats("b")
	if err != nil || len(st) != 1 {
		t.Fatalf("server stats %+v, %v", st, err)
	}
	if st[0].AdminState != config.AdminMaint {
		t.Errorf("admin state %q, want maint from the entry spelt 2001:DB8:0::1", st[0].AdminState)
	}
}
