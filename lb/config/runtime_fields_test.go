package config_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// TestRuntimeProxyProtocol sends PROXY v2 headers to the servers of a
// backend with proxy_protocol_v2: the server sees the client's own port.
func TestRuntimeProxyProtocol(t *testing.T) {
	s := listenSame(t, "127.0.0.2")
	ln := &proxyproto.Listener{Listener: s.lns[0], Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { ln.Close() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			c.Close()
		}
	})
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": %d, "pool": ["127.0.0.2"], "proxy_protocol": "proxy_protocol_v2",
	    "health_check": {"check_send_proxy": true}}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, s.port, port))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != c.LocalAddr().String() {
		t.Errorf("the server saw the client as %q (%v), want %s", line, err, c.LocalAddr())
	}
}

// TestRuntimeFailoverAndQueue checks failover_host when every server is
// down (after the HTTP health checks failed them), and max_connections
// with timeout_queue.
func TestRuntimeFailoverAndQueue(t *testing.T) {
	failover := httpServers(t, "failover", nil, "127.0.0.3")
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := listenSame(t, "127.0.0.4")
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "slow")
	})}
	go srv.Serve(slow.lns[0])
	t.Cleanup(func() { srv.Close() })
	down := listenSame(t, "127.0.0.2") // answers no HTTP: checks fail
	p1, p2 := freePort(t), freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [
	    {"id": "down", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2"],
	     "failover_host": "127.0.0.3:%d",
	     "health_check": {"http_config": {"uri": "/health", "code": 200}, "check_delay": 20, "check_timeout": 50, "check_max_retries": 1}},
	    {"id": "queue", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.4"],
	     "max_connections": 1, "timeout_queue": "0.2s"}],
	  "frontends": [{"id": "f1", "inbound_port": %d, "backend_id": "down"},
	    {"id": "f2", "inbound_port": %d, "backend_id": "queue"}]}`, down.port, failover.port, slow.port, p1, p2))
	testutil.Eventually(t, "the server down", func() bool {
		st, _ := rt.ServerStats("down")
		return len(st) == 1 && st[0].ServerState == "stopped"
	})
	client := newClient(t, nil)
	if code, body, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", p1)); code != 200 || body != "failover 127.0.0.3" {
		t.Errorf("with every server down: %d %q, want the failover host", code, body)
	}

	busy := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/slow", p2))
		if err == nil {
			resp.Body.Close()
		}
		busy <- err
	}()
	testutil.Eventually(t, "the slow request in flight", func() bool {
		st, _ := rt.ServerStats("queue")
		return len(st) == 1 && st[0].Active == 1
	})
	start := time.Now()
	code, _, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", p2))
	if waited := time.Since(start); code != http.StatusServiceUnavailable || waited < 200*time.Millisecond {
		t.Errorf("beyond max_connections: %d after %v, want 503 after the 0.2s queue timeout", code, waited)
	}
	once.Do(func() { close(release) })
	if err := <-busy; err != nil {
		t.Error(err)
	}
}

// TestRuntimeTCPACL refuses a client network on a TCP frontend.
func TestRuntimeTCPACL(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": %d, "pool": ["127.0.0.2"]}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}],
	  "acls": [{"id": "a", "frontend_id": "f", "index": 0, "match": {"ip_subnet": ["127.0.0.10"]}, "action": {"type": "deny"}}]}`, tcp.port, port))
	from := func(src string) (string, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	if line, err := from("127.0.0.10"); err == nil {
		t.Errorf("a denied client got %q", line)
	}
	if line, err := from("127.0.0.11"); err != nil || line != "tcp 127.0.0.2\n" {
		t.Errorf("an allowed client got %q, %v", line, err)
	}
}

// TestRuntimeHTTP3AndAccessLogs serves HTTP/3 beside HTTPS, announced by
// Alt-Svc, and writes access records for the frontend that asks for them
// only.
func TestRuntimeHTTP3AndAccessLogs(t *testing.T) {
	ca := testutil.NewCA(t)
	web := httpServers(t, "web", nil, "127.0.0.2")
	p1, p2 := freePort(t), freePort(t)
	var mu sync.Mutex
	var records []string
	rt := newRuntime(t, config.RuntimeOptions{AccessLog: lb.AccessLoggerFunc(func(r *lb.AccessRecord) {
		mu.Lock()
		records = append(records, r.Frontend)
		mu.Unlock()
	})})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb", "ssl_compatibility_level": "ssl_compatibility_level_modern"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [{"id": "h3", "inbound_port": %d, "backend_id": "b", "certificate_ids": ["c"], "enable_http3": true, "enable_access_logs": true},
	    {"id": "quiet", "inbound_port": %d, "backend_id": "b"}],
	  "certificates": [{"id": "c", "certificate_chain": %s}]}`, web.port, web.pool(), p1, p2, jsonString(chainPEM(t, ca.Leaf(t, "localhost")))))

	tr := &http.Transport{TLSClientConfig: ca.ClientConfig("localhost")}
	_, _, h := get(t, newClient(t, tr), fmt.Sprintf("https://127.0.0.1:%d/", p1))
	if want := `h3=":` + strconv.Itoa(p1) + `"`; !strings.HasPrefix(h.Get("Alt-Svc"), want) {
		t.Errorf("Alt-Svc %q, want %s", h.Get("Alt-Svc"), want)
	}
	old := ca.ClientConfig("localhost")
	old.MaxVersion = tls.VersionTLS12
	if _, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p1), old); err == nil {
		t.Error("the modern profile took a TLS 1.2 handshake")
	}
	h3 := &qhttp3.Transport{TLSClientConfig: ca.ClientConfig("localhost")}
	defer h3.Close()
	resp, err := (&http.Client{Transport: h3, Timeout: 10 * time.Second}).Get(fmt.Sprintf("https://127.0.0.1:%d/", p1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 {
		t.Errorf("HTTP/3: %s %d", resp.Proto, resp.StatusCode)
	}
	get(t, newClient(t, nil), fmt.Sprintf("http://127.0.0.1:%d/", p2))
	testutil.Eventually(t, "two access records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(records) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	for _, fe := range records {
		if fe != "h3" {
			t.Errorf("an access record of frontend %q, which does not enable them", fe)
		}
	}
}

// checkPort listens on one port of each of ips and closes what it
// accepts: a TCP health check passes there.
func checkPort(t *testing.T, ips ...string) *servers {
	t.Helper()
	s := listenSame(t, ips...)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for _, ln := range s.lns {
		t.Cleanup(func() { ln.Close() })
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		})
	}
	return s
}

// TestRuntimeRetries maps max_retries and redispatch_attempt_count: a
// backend has a server whose checks pass (on health_check.port) but whose
// forward_port refuses connections.
func TestRuntimeRetries(t *testing.T) {
	web := httpServers(t, "web", nil, "127.0.0.3") // 127.0.0.2 refuses at this port
	checks := checkPort(t, "127.0.0.2", "127.0.0.3")
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	client := newClient(t, nil)
	for _, c := range []struct {
		settings string
		fail     bool
	}{
		{``, false},
		{`"max_retries": 0,`, true},
		{`"redispatch_attempt_count": 0,`, true},
		{`"redispatch_attempt_count": 2,`, false},
		{`"redispatch_attempt_count": 1,`, false},
	} {
		apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2", "127.0.0.3"], %s
		    "health_check": {"port": %d, "check_delay": 60000}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, web.port, c.settings, checks.port, port))
		failed := 0
		for range 6 {
			if code, _, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 {
				failed++
			}
		}
		if (failed > 0) != c.fail {
			t.Errorf("with {%s}: %d of 6 requests failed, want failures: %v", c.settings, failed, c.fail)
		}
		st, _ := rt.ServerStats("b")
		if len(st) != 2 || st[0].ServerState != "running" {
			t.Fatalf("127.0.0.2 must stay up for the test: %+v", st)
		}
	}
}

// TestRuntimeSessionsOnDown closes the sessions of a server marked down
// with on_marked_down_action shutdown_sessions, and idle sessions after
// timeout_tunnel.
func TestRuntimeSessionsOnDown(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	checks := checkPort(t, "127.0.0.2")
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	doc := func(tunnel int) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_port": %d, "pool": ["127.0.0.2"], "on_marked_down_action": "shutdown_sessions",
		    "timeout_tunnel": %d,
		    "health_check": {"port": %d, "check_delay": 20, "transient_check_delay": "0.02s", "check_max_retries": 1, "check_timeout": 100}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, tcp.port, tunnel, checks.port, port)
	}
	open := func() *bufio.Reader {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Idle for timeout_tunnel: closed.
	apply(t, rt, doc(300))
	r := open()
	start := time.Now()
	if _, err := r.ReadString('\n'); err == nil || time.Since(start) < 250*time.Millisecond || time.Since(start) > 4*time.Second {
		t.Errorf("an idle session ended after %v (%v), want closed after 300ms", time.Since(start), err)
	}
	// Marked down: closed at once, long before the tunnel timeout and the
	// read deadline.
	apply(t, rt, doc(60000))
	r = open()
	for _, ln := range checks.lns {
		ln.Close()
	}
	start = time.Now()
	if _, err := r.ReadString('\n'); err == nil || time.Since(start) > 4*time.Second {
		t.Errorf("the session of a server marked down ended after %v (%v), want closed at once", time.Since(start), err)
	}
	st, _ := rt.ServerStats("b")
	if len(st) != 1 || st[0].ServerState != "stopped" {
		t.Errorf("server %+v, want stopped", st)
	}
}

// TestRuntimeSeveralIPs listens on every address of RuntimeOptions.IPs.
func TestRuntimeSeveralIPs(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	port := freePort(t)
	rt := config.NewRuntime(config.RuntimeOptions{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.20")}})
	defer rt.Close(t.Context())
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": %d, "pool": ["127.0.0.2"]}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`, tcp.port, port))
	for _, ip := range []string{"127.0.0.1", "127.0.0.20"} {
		if got, err := greet(net.JoinHostPort(ip, strconv.Itoa(port)), nil); got != "tcp 127.0.0.2" {
			t.Errorf("through %s: %q, %v", ip, got, err)
		}
	}
}

// TestRuntimeLimits wires the lbkit limits of a frontend: a client's
// connection beyond client_max_connections is closed at L4 and answered
// 429 at L7.
func TestRuntimeLimits(t *testing.T) {
	tcp := tcpServers(t, "tcp", nil, "127.0.0.2")
	web := httpServers(t, "web", nil, "127.0.0.3")
	p1, p2 := freePort(t), freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "tcp", "forward_port": %d, "pool": ["127.0.0.2"]},
	    {"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.3"]}],
	  "frontends": [{"id": "l4", "inbound_port": %d, "backend_id": "tcp", "connection_rate_limit": 1000,
	      "lbkit": {"client_max_connections": 1}},
	    {"id": "l7", "inbound_port": %d, "backend_id": "web", "lbkit": {"client_max_connections": 1}}]}`,
		tcp.port, web.port, p1, p2))
	first, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p1))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(first).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if got, err := greet(fmt.Sprintf("127.0.0.1:%d", p1), nil); err == nil {
		t.Errorf("a second connection of the client at L4 got %q", got)
	}

	hold, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p2))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	fmt.Fprintf(hold, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	hold.SetDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(hold), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v", err)
	}
	if code, _, _ := get(t, newClient(t, nil), fmt.Sprintf("http://127.0.0.1:%d/", p2)); code != http.StatusTooManyRequests {
		t.Errorf("a second connection of the client at L7: %d, want 429", code)
	}
}

// TestRuntimeTLSSettingsKeepPlainServers changes ssl_compatibility_level
// and the session-ticket secret: the frontend with certificates gets a
// new server (its statistics restart), the plain one keeps its server and
// its keep-alive connections.
func TestRuntimeTLSSettingsKeepPlainServers(t *testing.T) {
	ca := testutil.NewCA(t)
	web := httpServers(t, "web", nil, "127.0.0.2")
	p1, p2 := freePort(t), freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	doc := func(level, secret string) string {
		return fmt.Sprintf(`{"lb": {"id": "lb", "ssl_compatibility_level": %q}, "secrets": {"session_ticket_secret": %q},
		  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
		  "frontends": [{"id": "tls", "name": "tls", "inbound_port": %d, "backend_id": "b", "certificate_ids": ["c"]},
		    {"id": "plain", "name": "plain", "inbound_port": %d, "backend_id": "b"}],
		  "certificates": [{"id": "c", "certificate_chain": %s}]}`,
			level, secret, web.port, web.pool(), p1, p2, jsonString(chainPEM(t, ca.Leaf(t, "localhost"))))
	}
	apply(t, rt, doc("ssl_compatibility_level_intermediate", "first secret, long enough for a key"))
	get(t, newClient(t, &http.Transport{TLSClientConfig: ca.ClientConfig("localhost")}), fmt.Sprintf("https://127.0.0.1:%d/", p1))
	get(t, newClient(t, nil), fmt.Sprintf("http://127.0.0.1:%d/", p2))
	requests := func(name string) uint64 { return rt.FrontendSources()[name].Stats().Requests }
	if requests("tls") != 1 || requests("plain") != 1 {
		t.Fatalf("requests before: tls %d, plain %d", requests("tls"), requests("plain"))
	}
	apply(t, rt, doc("ssl_compatibility_level_modern", "second secret, long enough for a key"))
	if got := requests("tls"); got != 0 {
		t.Errorf("the TLS frontend kept its server (%d requests) across a TLS change", got)
	}
	if got := requests("plain"); got != 1 {
		t.Errorf("the plain frontend's server was rebuilt for a TLS setting (%d requests)", got)
	}
}
