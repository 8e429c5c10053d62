package lb_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// collector keeps copies of the access records it receives, for the test to
// take in order.
type collector struct {
	*testutil.Records[lb.AccessRecord]
}

func newCollector() *collector { return &collector{testutil.NewRecords[lb.AccessRecord](1000)} }

// Log keeps a copy of r.
func (c *collector) Log(r *lb.AccessRecord) { c.Add(*r) }

func checkTimers(t *testing.T, r lb.AccessRecord) {
	t.Helper()
	if r.Tw < 0 || r.Tc < 0 || r.Tr < 0 || r.Ta < 0 {
		t.Errorf("negative timer in %+v", r)
	}
	if r.Tw+r.Tc+r.Tr > r.Ta {
		t.Errorf("Tw+Tc+Tr = %v > Ta = %v", r.Tw+r.Tc+r.Tr, r.Ta)
	}
}

func TestAccessRecordsL7(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	logs := newCollector()
	proxy := &lb.ReverseProxy{Name: "fe", Pool: pool, AccessLog: logs}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()

	before := time.Now()
	for i, path := range []string{"/size?n=1000", "/status?code=404"} {
		code, body, _ := get(t, c, url+path)
		r := logs.Next(t)
		if r.Server != "a" || r.Backend != "web" || r.Frontend != "fe" || !r.HTTP || r.Status != code ||
			r.Method != "GET" || r.URI != path || r.Proto != "HTTP/1.1" || r.Termination != "--" ||
			r.BytesOut != int64(len(body)) || r.Retries != 0 || r.Client.Addr().String() != "127.0.0.1" {
			t.Errorf("request %d: record %+v (status %d, %d bytes)", i, r, code, len(body))
		}
		if r.Time.Before(before.Add(-time.Millisecond)) || r.Time.After(time.Now()) {
			t.Errorf("record time %v not within the request", r.Time)
		}
		if !strings.HasPrefix(r.Host, "127.0.0.1:") {
			t.Errorf("Host %q", r.Host)
		}
		checkTimers(t, r)
	}
}

func TestAccessRecordTerminationStates(t *testing.T) {
	testutil.CheckLeaks(t)
	slow := testutil.HTTPBackend(t, "slow")
	tests := []struct {
		name    string
		servers []lb.Server
		down    bool
		path    string
		status  int
		term    string
		server  string
	}{
		{name: "server timeout", servers: []lb.Server{{Name: "slow", Addr: slow.Addr}}, path: "/slow?ms=2000",
			status: 504, term: "sH", server: "slow"},
		{name: "refused", servers: []lb.Server{{Name: "closed", Addr: testutil.ClosedAddr(t)}}, path: "/",
			status: 502, term: "SC", server: "closed"},
		{name: "no server", servers: []lb.Server{{Name: "down", Addr: "127.0.0.1:1"}}, down: true, path: "/",
			status: 503, term: "SC", server: lb.NoServerName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := &lb.Pool{Name: "web"}
			must(t, pool.Update(tt.servers))
			if tt.down {
				pool.SetState(tt.servers[0].Name, lb.StateDown, "test")
			}
			logs := newCollector()
			proxy := &lb.ReverseProxy{Pool: pool, ServerTimeout: 200 * time.Millisecond, AccessLog: logs}
			url, _ := startL7(t, proxy, time.Second)
			c := client()
			defer c.CloseIdleConnections()
			code, _, _ := get(t, c, url+tt.path)
			r := logs.Next(t)
			if code != tt.status || r.Status != tt.status || r.Termination != tt.term || r.Server != tt.server {
				t.Fatalf("status %d, record %+v; want %d %s %s", code, r, tt.status, tt.term, tt.server)
			}
			if r.Ta < 0 || r.Tr != -1 {
				t.Errorf("timers Ta %v Tr %v", r.Ta, r.Tr)
			}
		})
	}
}

func TestAccessRecordClientAbort(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	logs := newCollector()
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs}
	url, _ := startL7(t, proxy, time.Second)
	conn := dial(t, strings.TrimPrefix(url, "http://"))
	io.WriteString(conn, "GET /size?n=100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	r := logs.Next(t)
	if r.Termination != "CD" || r.Status != 200 || r.Server != "a" || r.BytesOut >= 100000000 {
		t.Fatalf("record %+v, want CD after a partial 200", r)
	}
}

func TestAccessRecordsL4(t *testing.T) {
	testutil.CheckLeaks(t)
	ns := testutil.NameServer(t, "n1")
	pool := &lb.Pool{Name: "tcp"}
	must(t, pool.Update([]lb.Server{{Name: "n1", Addr: ns.Addr}, {Name: "closed", Addr: testutil.ClosedAddr(t)}}))
	logs := newCollector()
	addr := serveL4(t, &lb.TCPFrontend{Name: "test", Backend: pool, AccessLog: logs})
	for range 4 {
		c := dial(t, addr)
		if got := readName(t, c); got != "n1" {
			t.Fatalf("served by %q", got)
		}
		roundTrip(t, c, "hello\n")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
		r := logs.Next(t)
		if r.HTTP || r.Server != "n1" || r.Backend != "tcp" || r.Frontend != "test" || r.Termination != "--" ||
			r.BytesIn != 6 || r.BytesOut != 9 || r.Tw < 0 || r.Tc < 0 || r.Tt < r.Tw+r.Tc {
			t.Errorf("record %+v", r)
		}
		if r.Retries > 0 && !r.Redispatch {
			t.Errorf("retried without redispatch: %+v", r)
		}
	}
	pool.SetState("n1", lb.StateDown, "test")
	pool.SetState("closed", lb.StateDown, "test")
	c := dial(t, addr)
	io.Copy(io.Discard, c)
	c.Close()
	r := logs.Next(t)
	if r.Termination != "SC" || r.Server != lb.NoServerName || r.Tw != -1 {
		t.Errorf("no-server record %+v", r)
	}
}

// allocsPerProxiedRequest counts the allocations of one request through
// proxy to a loopback server, on a reused connection.
func allocsPerProxiedRequest(t *testing.T, proxy *lb.ReverseProxy) float64 {
	w := &testutil.DiscardWriter{H: http.Header{}}
	return testing.AllocsPerRun(200, func() {
		r := httptest.NewRequest("GET", "http://lb.test/", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		clear(w.H)
		proxy.ServeHTTP(w, r)
	})
}

func TestAccessLogAllocs(t *testing.T) {
	skipUnderRace(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	off := allocsPerProxiedRequest(t, &lb.ReverseProxy{Pool: pool})
	on := allocsPerProxiedRequest(t, &lb.ReverseProxy{Pool: pool, AccessLog: lb.AccessLoggerFunc(func(*lb.AccessRecord) {})})
	t.Logf("allocations per request: %.0f without access log, %.0f with", off, on)
	// Off, the path is the one without the feature (nil checks only); on,
	// the request's context value and its shallow copy.
	if on-off > 2 {
		t.Errorf("the access log adds %.0f allocations per request, want at most 2", on-off)
	}
}

func TestAccessRecordUpgrade(t *testing.T) {
	testutil.CheckLeaks(t)
	ws := testutil.HTTPBackend(t, "ws")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "ws", Addr: ws.Addr}}))
	logs := newCollector()
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs, RequestID: true}
	url, _ := startL7(t, proxy, time.Second)
	c, br := dialUpgrade(t, url)
	echoLine(t, c, br, "one")
	c.Close()
	r := logs.Next(t)
	if r.Status != http.StatusSwitchingProtocols || r.Server != "ws" || r.RequestID == "" {
		t.Fatalf("record %+v", r)
	}
}

func TestAccessRecordServerAbort(t *testing.T) {
	testutil.CheckLeaks(t)
	// A server that promises more body than it sends, then closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
			c.Close()
		}
	}()
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "short", Addr: ln.Addr().String()}}))
	logs := newCollector()
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if resp, err := c.Get(url); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r := logs.Next(t)
	if r.Termination != "SD" || r.Server != "short" || r.Status != 200 {
		t.Fatalf("record %+v, want SD", r)
	}
}

// TestAccessRecordL4Counts: the record of a session counts the sessions
// open at its end, itself included, and the sessions still queued.
func TestAccessRecordL4Counts(t *testing.T) {
	testutil.CheckLeaks(t)
	ns := testutil.NameServer(t, "n1")
	serve := func(pool *lb.Pool) (string, *collector) {
		logs := newCollector()
		return serveL4(t, &lb.TCPFrontend{Name: "fe", Backend: pool, AccessLog: logs}), logs
	}

	// One session open while a second one ends.
	pool := &lb.Pool{Name: "be"}
	must(t, pool.Update([]lb.Server{{Name: "n1", Addr: ns.Addr}}))
	addr, logs := serve(pool)
	open := dial(t, addr)
	defer open.Close()
	readName(t, open)
	c := dial(t, addr)
	readName(t, c)
	c.Close()
	r := logs.Next(t)
	if r.ActiveConns != 2 || r.FrontendConns != 2 || r.BackendConns != 2 || r.ServerConns != 2 ||
		r.ServerQueue != 0 || r.BackendQueue != 0 {
		t.Errorf("counts act %d fe %d be %d srv %d queues %d/%d, want 2/2/2/2 0/0",
			r.ActiveConns, r.FrontendConns, r.BackendConns, r.ServerConns, r.ServerQueue, r.BackendQueue)
	}

	// A full server: of two queued sessions, the first one to time out
	// sees the other still queued. The second joins 300 ms after the
	// first, so their deadlines are apart; the queue timeout leaves it
	// 1.7 s to get there on a loaded machine.
	full := &lb.Pool{Name: "full", QueueTimeout: 2 * time.Second}
	must(t, full.Update([]lb.Server{{Name: "n1", Addr: ns.Addr, MaxConns: 1}}))
	addr, logs = serve(full)
	held := dial(t, addr)
	defer held.Close()
	readName(t, held)
	waitQueue := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); full.Stats().QueueCur != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("queue never reached %d", n)
			}
		}
	}
	first := dial(t, addr)
	defer first.Close()
	waitQueue(1)
	time.Sleep(300 * time.Millisecond)
	second := dial(t, addr)
	defer second.Close()
	waitQueue(2)
	r = logs.Next(t)
	if r.Termination != "sQ" || r.Server != lb.NoServerName || r.FrontendConns != 3 || r.BackendConns != 1 ||
		r.ServerConns != 0 || r.BackendQueue != 1 {
		t.Errorf("queue timeout: %s fe %d be %d srv %d backend_queue %d, want sQ 3/1/0 1",
			r.Termination, r.FrontendConns, r.BackendConns, r.ServerConns, r.BackendQueue)
	}
	if r = logs.Next(t); r.Termination != "sQ" || r.BackendQueue != 0 {
		t.Errorf("second queue timeout: %s backend_queue %d", r.Termination, r.BackendQueue)
	}
}

// TestAccessRecordL7Counts: with the ConnState hook, a request's record
// counts the proxy's client connections; its lease counts in beconn and
// srv_conn.
func TestAccessRecordL7Counts(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	logs := newCollector()
	proxy := &lb.ReverseProxy{Name: "fe", Pool: pool, AccessLog: logs}
	url := startL7Hooked(t, proxy, true)
	idle := dial(t, strings.TrimPrefix(url, "http://")) // a second client connection, idle
	defer idle.Close()
	for deadline := time.Now().Add(5 * time.Second); proxy.Stats().ConnCur != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not counted")
		}
	}
	c := client()
	defer c.CloseIdleConnections()
	get(t, c, url+"/")
	r := logs.Next(t)
	if r.ActiveConns != 2 || r.FrontendConns != 2 || r.BackendConns != 1 || r.ServerConns != 1 ||
		r.ServerQueue != 0 || r.BackendQueue != 0 {
		t.Errorf("counts act %d fe %d be %d srv %d queues %d/%d, want 2/2/1/1 0/0",
			r.ActiveConns, r.FrontendConns, r.BackendConns, r.ServerConns, r.ServerQueue, r.BackendQueue)
	}
}
