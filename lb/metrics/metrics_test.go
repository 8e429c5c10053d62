package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
	"github.com/lbkit/lbkit/lb/metrics"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to the failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	testutil.LeakMain(m)
}

// alternate picks the pickable servers in turn, so that tests know where
// each request goes.
func alternate() lb.Balancer {
	var n atomic.Uint64
	return lb.BalancerFunc(func(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
		return s.Servers[(n.Add(1)-1)%uint64(len(s.Servers))], nil
	})
}

// setup is a ReverseProxy "www" over a Pool "web" of two loopback backends,
// "a" and "b", served on 127.0.0.1.
type setup struct {
	pool    *lb.Pool
	proxy   *lb.ReverseProxy
	a, b    *testutil.Backend
	url     string
	client  *http.Client
	collect *metrics.Collector
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	s := &setup{a: testutil.HTTPBackend(t, "a"), b: testutil.HTTPBackend(t, "b")}
	s.pool = &lb.Pool{Name: "web", Balancer: alternate()}
	if err := s.pool.Update([]lb.Server{
		{Name: "a", Addr: s.a.Addr},
		{Name: "b", Addr: s.b.Addr},
	}); err != nil {
		t.Fatal(err)
	}
	s.proxy = &lb.ReverseProxy{Name: "www", Pool: s.pool}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.proxy, ConnContext: s.proxy.ConnContext, ConnState: s.proxy.ConnState, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, ln, time.Second, s.proxy) }()
	s.client = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	s.url = "http://" + ln.Addr().String()
	s.collect = &metrics.Collector{}
	s.collect.AddPool("web", s.pool)
	s.collect.AddFrontend("www", s.proxy)
	return s
}

// get sends a GET for path through the proxy and reads the whole response.
func (s *setup) get(t *testing.T, path string, want int) {
	t.Helper()
	resp, err := s.client.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d", path, resp.Status, want)
	}
}

// traffic sends six requests, which alternate between a and b: each server
// answers two 200s and one 404.
func (s *setup) traffic(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/", "/", "/status?code=404", "/status?code=404", "/", "/"} {
		want := http.StatusOK
		if strings.HasPrefix(path, "/status") {
			want = http.StatusNotFound
		}
		s.get(t, path, want)
	}
	// Requests count when they end, which may be just after the client has
	// read the response.
	testutil.Eventually(t, "six requests counted", func() bool {
		return s.pool.Stats().Requests == 6 && s.proxy.Stats().Requests == 6
	})
}

func TestCollectAfterTraffic(t *testing.T) {
	s := newSetup(t)
	s.traffic(t)
	now := time.Now()
	if !s.pool.RecordCheck("a", lb.CheckResult{Time: now, Duration: 3 * time.Millisecond, Passed: true, Status: "L7OK", Code: 200}) {
		t.Fatal("RecordCheck: no server a")
	}
	if !s.pool.SetState("b", lb.StateMaintenance, "operator") {
		t.Fatal("SetState: no server b")
	}

	var checkStatus strings.Builder
	for _, st := range []string{"HANA", "L4CON", "L4OK", "L4TOUT", "L6OK", "L6RSP", "L6TOUT", "L7OK", "L7OKC", "L7RSP", "L7STS", "L7TOUT", "PROCERR", "PROCOK", "PROCTOUT", "SOCKERR"} {
		v := 0
		if st == "L7OK" {
			v = 1
		}
		fmt.Fprintf(&checkStatus, "lbkit_server_check_status{proxy=\"web\",server=\"a\",state=%q} %d\n", st, v)
	}
	want := `
# HELP lbkit_backend_active_servers Number of pickable regular servers (act).
# TYPE lbkit_backend_active_servers gauge
lbkit_backend_active_servers{proxy="web"} 1
# HELP lbkit_backend_http_requests_total Total number of HTTP requests that ended, with a response or not (req_tot).
# TYPE lbkit_backend_http_requests_total counter
lbkit_backend_http_requests_total{proxy="web"} 6
# HELP lbkit_backend_http_responses_total Total number of HTTP responses from servers, by class (hrsp_1xx .. hrsp_other).
# TYPE lbkit_backend_http_responses_total counter
lbkit_backend_http_responses_total{code="1xx",proxy="web"} 0
lbkit_backend_http_responses_total{code="2xx",proxy="web"} 4
lbkit_backend_http_responses_total{code="3xx",proxy="web"} 0
lbkit_backend_http_responses_total{code="4xx",proxy="web"} 2
lbkit_backend_http_responses_total{code="5xx",proxy="web"} 0
lbkit_backend_http_responses_total{code="other",proxy="web"} 0
# HELP lbkit_backend_status Whether the backend has a pickable server (state UP) or not (DOWN): 1 for the current state, 0 for the other.
# TYPE lbkit_backend_status gauge
lbkit_backend_status{proxy="web",state="DOWN"} 0
lbkit_backend_status{proxy="web",state="UP"} 1
# HELP lbkit_frontend_connections_total Total number of client connections accepted (conn_tot).
# TYPE lbkit_frontend_connections_total counter
lbkit_frontend_connections_total{proxy="www"} 1
# HELP lbkit_frontend_http_requests_total Total number of HTTP requests received, denied ones included (req_tot).
# TYPE lbkit_frontend_http_requests_total counter
lbkit_frontend_http_requests_total{proxy="www"} 6
# HELP lbkit_frontend_http_responses_total Total number of HTTP responses sent to clients, by class (hrsp_1xx .. hrsp_other).
# TYPE lbkit_frontend_http_responses_total counter
lbkit_frontend_http_responses_total{code="1xx",proxy="www"} 0
lbkit_frontend_http_responses_total{code="2xx",proxy="www"} 4
lbkit_frontend_http_responses_total{code="3xx",proxy="www"} 0
lbkit_frontend_http_responses_total{code="4xx",proxy="www"} 2
lbkit_frontend_http_responses_total{code="5xx",proxy="www"} 0
lbkit_frontend_http_responses_total{code="other",proxy="www"} 0
# HELP lbkit_server_check_code Response code of the last health check, 0 when its protocol has none (check_code).
# TYPE lbkit_server_check_code gauge
lbkit_server_check_code{proxy="web",server="a"} 200
# HELP lbkit_server_check_duration_seconds Duration of the last health check (check_duration).
# TYPE lbkit_server_check_duration_seconds gauge
lbkit_server_check_duration_seconds{proxy="web",server="a"} 0.003
# HELP lbkit_server_check_status Status of the last health check (check_status): 1 for the current status, 0 for the others.
# TYPE lbkit_server_check_status gauge
` + checkStatus.String() + `# HELP lbkit_server_http_requests_total Total number of HTTP requests that ended, with a response or not (req_tot).
# TYPE lbkit_server_http_requests_total counter
lbkit_server_http_requests_total{proxy="web",server="a"} 3
lbkit_server_http_requests_total{proxy="web",server="b"} 3
# HELP lbkit_server_http_responses_total Total number of HTTP responses from servers, by class (hrsp_1xx .. hrsp_other).
# TYPE lbkit_server_http_responses_total counter
lbkit_server_http_responses_total{code="1xx",proxy="web",server="a"} 0
lbkit_server_http_responses_total{code="1xx",proxy="web",server="b"} 0
lbkit_server_http_responses_total{code="2xx",proxy="web",server="a"} 2
lbkit_server_http_responses_total{code="2xx",proxy="web",server="b"} 2
lbkit_server_http_responses_total{code="3xx",proxy="web",server="a"} 0
lbkit_server_http_responses_total{code="3xx",proxy="web",server="b"} 0
lbkit_server_http_responses_total{code="4xx",proxy="web",server="a"} 1
lbkit_server_http_responses_total{code="4xx",proxy="web",server="b"} 1
lbkit_server_http_responses_total{code="5xx",proxy="web",server="a"} 0
lbkit_server_http_responses_total{code="5xx",proxy="web",server="b"} 0
lbkit_server_http_responses_total{code="other",proxy="web",server="a"} 0
lbkit_server_http_responses_total{code="other",proxy="web",server="b"} 0
# HELP lbkit_server_status State of the server (status): 1 for the current state, 0 for the others.
# TYPE lbkit_server_status gauge
lbkit_server_status{proxy="web",server="a",state="DOWN"} 0
lbkit_server_status{proxy="web",server="a",state="DRAIN"} 0
lbkit_server_status{proxy="web",server="a",state="MAINT"} 0
lbkit_server_status{proxy="web",server="a",state="UP"} 1
lbkit_server_status{proxy="web",server="b",state="DOWN"} 0
lbkit_server_status{proxy="web",server="b",state="DRAIN"} 0
lbkit_server_status{proxy="web",server="b",state="MAINT"} 1
lbkit_server_status{proxy="web",server="b",state="UP"} 0
`
	if err := promtest.CollectAndCompare(s.collect, strings.NewReader(want),
		"lbkit_backend_active_servers", "lbkit_backend_http_requests_total",
		"lbkit_backend_http_responses_total", "lbkit_backend_status",
		"lbkit_frontend_connections_total", "lbkit_frontend_http_requests_total",
		"lbkit_frontend_http_responses_total",
		"lbkit_server_check_code", "lbkit_server_check_duration_seconds",
		"lbkit_server_check_status", "lbkit_server_http_requests_total",
		"lbkit_server_http_responses_total", "lbkit_server_status",
	); err != nil {
		t.Fatal(err)
	}

	// The histograms carry every session, in buckets in seconds.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.collect)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := family(t, families, "lbkit_server_total_time_seconds")
	if got := len(total.GetMetric()); got != 2 {
		t.Fatalf("lbkit_server_total_time_seconds: %d series, want 2", got)
	}
	for _, m := range total.GetMetric() {
		h := m.GetHistogram()
		if h.GetSampleCount() != 3 || h.GetSampleSum() <= 0 {
			t.Errorf("%v: count %d, sum %g; want 3 sessions", m.GetLabel(), h.GetSampleCount(), h.GetSampleSum())
		}
		b := h.GetBucket()
		if len(b) == 0 || b[len(b)-1].GetUpperBound() != 300 || b[0].GetUpperBound() != 0.0001 {
			t.Errorf("%v: buckets %v, want 100µs .. 5min in seconds", m.GetLabel(), b)
		}
	}
	age := family(t, families, "lbkit_server_check_age_seconds")
	if got := age.GetMetric(); len(got) != 1 || got[0].GetGauge().GetValue() < 0 || got[0].GetGauge().GetValue() > 60 {
		t.Errorf("lbkit_server_check_age_seconds: %v, want the age of one check", got)
	}
}

func family(t *testing.T, families []*dto.MetricFamily, name string) *dto.MetricFamily {
	t.Helper()
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestLint(t *testing.T) {
	s := newSetup(t)
	s.traffic(t)
	s.pool.RecordCheck("a", lb.CheckResult{Time: time.Now(), Duration: time.Millisecond, Status: "L4CON", Reason: "refused"})
	problems, err := promtest.CollectAndLint(s.collect)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNamespaceAndSources(t *testing.T) {
	s := newSetup(t)
	c := &metrics.Collector{Namespace: "edge"}
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Fatalf("empty collector: %d series", n)
	}
	c.AddPool("web", s.pool)
	c.AddFrontend("www", s.proxy)
	if n := promtest.CollectAndCount(c, "edge_server_status"); n != 8 {
		t.Errorf("edge_server_status: %d series, want 2 servers × 4 states", n)
	}
	if n := promtest.CollectAndCount(c, "edge_frontend_connections_total"); n != 1 {
		t.Errorf("edge_frontend_connections_total: %d series, want 1", n)
	}
	if n := promtest.CollectAndCount(c, "lbkit_server_status"); n != 0 {
		t.Errorf("lbkit_server_status: %d series under namespace edge", n)
	}
	// Adding under the same name replaces.
	c.AddPool("web", s.pool)
	if n := promtest.CollectAndCount(c, "edge_backend_active_servers"); n != 1 {
		t.Errorf("edge_backend_active_servers: %d series after re-adding, want 1", n)
	}
	c.RemovePool("web")
	c.RemoveFrontend("www")
	c.RemovePool("none")
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Errorf("after removal: %d series, want 0", n)
	}
}

// TestConcurrentReload scrapes while sources come and go and traffic
// flows; under -race it shows that the Collector is safe for that.
func TestConcurrentReload(t *testing.T) {
	s := newSetup(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.collect)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("p%d", i%4)
			s.collect.AddPool(name, s.pool)
			s.collect.AddFrontend(name, s.proxy)
			s.collect.RemovePool(fmt.Sprintf("p%d", (i+2)%4))
			s.collect.RemoveFrontend(fmt.Sprintf("p%d", (i+2)%4))
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 5 {
		s.get(t, "/", http.StatusOK)
	}
	close(stop)
	wg.Wait()
}

// serveMetrics serves c through metrics.Handler on 127.0.0.1, until the
// test ends, and returns the address.
func serveMetrics(t *testing.T, c *metrics.Collector) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: metrics.Handler(c), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestPromtoolAcceptsExposition(t *testing.T) {
	promtool := testutil.LookBinary(t, "promtool", "prometheus")
	s := newSetup(t)
	s.traffic(t)
	s.pool.RecordCheck("a", lb.CheckResult{Time: time.Now(), Duration: time.Millisecond, Passed: true, Status: "L4OK"})
	addr := serveMetrics(t, s.collect)
	resp, err := s.client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v, %v", resp.Status, err)
	}
	if !strings.Contains(string(body), `lbkit_server_http_requests_total{proxy="web",server="a"} 3`) {
		t.Fatalf("exposition lacks the requests of server a:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestCollectL4 exports a Pool served by a TCPFrontend: sessions and bytes
// count, HTTP counters stay 0.
func TestCollectL4(t *testing.T) {
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "tcp"}
	if err := pool.Update([]lb.Server{{Name: "echo", Addr: echo.Addr}}); err != nil {
		t.Fatal(err)
	}
	fe := &lb.TCPFrontend{Name: "tcp-in", Backend: pool}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, fe, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for range 3 {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, c); n != 100 || err != nil {
			t.Fatalf("echo: %d bytes, %v; want 100", n, err)
		}
		c.Close()
	}
	testutil.Eventually(t, "three sessions ended", func() bool {
		s := pool.Stats()
		return s.TotalTime.Count == 3 && s.Cur == 0 && fe.Stats().ConnCur == 0
	})

	c := &metrics.Collector{}
	c.AddPool("tcp", pool)
	c.AddFrontend("tcp-in", fe)
	want := `
# HELP lbkit_backend_bytes_in_total Bytes received from clients and sent to servers (bin).
# TYPE lbkit_backend_bytes_in_total counter
lbkit_backend_bytes_in_total{proxy="tcp"} 300
# HELP lbkit_backend_http_requests_total Total number of HTTP requests that ended, with a response or not (req_tot).
# TYPE lbkit_backend_http_requests_total counter
lbkit_backend_http_requests_total{proxy="tcp"} 0
# HELP lbkit_frontend_bytes_out_total Bytes sent to clients (bout).
# TYPE lbkit_frontend_bytes_out_total counter
lbkit_frontend_bytes_out_total{proxy="tcp-in"} 300
# HELP lbkit_frontend_connections_total Total number of client connections accepted (conn_tot).
# TYPE lbkit_frontend_connections_total counter
lbkit_frontend_connections_total{proxy="tcp-in"} 3
# HELP lbkit_frontend_current_sessions Number of current client connections (scur).
# TYPE lbkit_frontend_current_sessions gauge
lbkit_frontend_current_sessions{proxy="tcp-in"} 0
# HELP lbkit_server_bytes_out_total Bytes received from servers and sent to clients (bout).
# TYPE lbkit_server_bytes_out_total counter
lbkit_server_bytes_out_total{proxy="tcp",server="echo"} 300
# HELP lbkit_server_sessions_total Total number of sessions, failed connection attempts included (stot).
# TYPE lbkit_server_sessions_total counter
lbkit_server_sessions_total{proxy="tcp",server="echo"} 3
`
	if err := promtest.CollectAndCompare(c, strings.NewReader(want),
		"lbkit_backend_bytes_in_total", "lbkit_backend_http_requests_total",
		"lbkit_frontend_bytes_out_total", "lbkit_frontend_connections_total",
		"lbkit_frontend_current_sessions", "lbkit_server_bytes_out_total",
		"lbkit_server_sessions_total",
	); err != nil {
		t.Fatal(err)
	}
}

// TestServerStatus maps every server state to HAProxy's status.
func TestServerStatus(t *testing.T) {
	names := []string{"up", "going-down", "down", "going-up", "maint", "drain"}
	pool := &lb.Pool{Name: "p"}
	var servers []lb.Server
	for i, n := range names {
		servers = append(servers, lb.Server{Name: n, Addr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
	}
	if err := pool.Update(servers); err != nil {
		t.Fatal(err)
	}
	pool.SetHealth("going-down", lb.StateGoingDown, "1/3 failed")
	pool.SetHealth("down", lb.StateDown, "refused")
	pool.SetHealth("going-up", lb.StateGoingUp, "1/2 passed")
	pool.SetState("maint", lb.StateMaintenance, "operator")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pool.Drain(ctx, "drain"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"up": "UP", "going-down": "UP", "down": "DOWN", "going-up": "DOWN", "maint": "MAINT", "drain": "DRAIN"}

	c := &metrics.Collector{}
	c.AddPool("p", pool)
	var b strings.Builder
	b.WriteString("# HELP lbkit_server_status State of the server (status): 1 for the current state, 0 for the others.\n# TYPE lbkit_server_status gauge\n")
	for _, n := range names {
		for _, st := range []string{"DOWN", "DRAIN", "MAINT", "UP"} {
			v := 0
			if want[n] == st {
				v = 1
			}
			fmt.Fprintf(&b, "lbkit_server_status{proxy=\"p\",server=%q,state=%q} %d\n", n, st, v)
		}
	}
	b.WriteString(`# HELP lbkit_backend_status Whether the backend has a pickable server (state UP) or not (DOWN): 1 for the current state, 0 for the other.
# TYPE lbkit_backend_status gauge
lbkit_backend_status{proxy="p",state="DOWN"} 0
lbkit_backend_status{proxy="p",state="UP"} 1
`)
	if err := promtest.CollectAndCompare(c, strings.NewReader(b.String()), "lbkit_server_status", "lbkit_backend_status"); err != nil {
		t.Fatal(err)
	}

	// With no pickable server left, the backend is DOWN.
	pool.SetHealth("up", lb.StateDown, "refused")
	pool.SetHealth("going-down", lb.StateDown, "refused")
	want2 := `
# HELP lbkit_backend_status Whether the backend has a pickable server (state UP) or not (DOWN): 1 for the current state, 0 for the other.
# TYPE lbkit_backend_status gauge
lbkit_backend_status{proxy="p",state="DOWN"} 1
lbkit_backend_status{proxy="p",state="UP"} 0
`
	if err := promtest.CollectAndCompare(c, strings.NewReader(want2), "lbkit_backend_status"); err != nil {
		t.Fatal(err)
	}
}

// fixedLog is an access log that dropped and failed a fixed number of
// records.
type fixedLog struct{ dropped, errors uint64 }

func (l fixedLog) Dropped() uint64 { return l.dropped }
func (l fixedLog) Errors() uint64  { return l.errors }

// An accesslog.Writer is an AccessLogSource.
var _ metrics.AccessLogSource = (*accesslog.Writer)(nil)

// TestAccessLogDrops: the drops and write errors of the access logs added
// are exported per log, and stop being when the log is removed.
func TestAccessLogDrops(t *testing.T) {
	c := &metrics.Collector{}
	c.AddAccessLog("file", fixedLog{dropped: 7, errors: 2})
	c.AddAccessLog("syslog", fixedLog{})
	want := `
# HELP lbkit_access_log_dropped_total Total number of access records dropped because the log's buffer was full.
# TYPE lbkit_access_log_dropped_total counter
lbkit_access_log_dropped_total{log="file"} 7
lbkit_access_log_dropped_total{log="syslog"} 0
# HELP lbkit_access_log_errors_total Total number of access records the log's sink failed to write.
# TYPE lbkit_access_log_errors_total counter
lbkit_access_log_errors_total{log="file"} 2
lbkit_access_log_errors_total{log="syslog"} 0
`
	if err := promtest.CollectAndCompare(c, strings.NewReader(want), "lbkit_access_log_dropped_total", "lbkit_access_log_errors_total"); err != nil {
		t.Error(err)
	}
	c.RemoveAccessLog("file")
	c.RemoveAccessLog("syslog")
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Errorf("after removal: %d series, want 0", n)
	}
}

// fixedShared is shared state with fixed counters.
type fixedShared lb.SharedStats

func (s fixedShared) SharedStats() lb.SharedStats { return lb.SharedStats(s) }

// TestShared: the counters of state shared between load balancers are
// exported per source, and stop being when the source is removed.
func TestShared(t *testing.T) {
	c := &metrics.Collector{}
	c.AddShared("table", fixedShared{Requests: 10, Fallbacks: 3, Errors: 1})
	c.AddShared("rate", fixedShared{Requests: 5})
	want := `
# HELP lbkit_shared_fallbacks_total Total number of decisions taken locally because the shared store failed, was slow or was known to be down.
# TYPE lbkit_shared_fallbacks_total counter
lbkit_shared_fallbacks_total{shared="rate"} 0
lbkit_shared_fallbacks_total{shared="table"} 3
# HELP lbkit_shared_requests_total Total number of requests to the store of state shared between load balancers.
# TYPE lbkit_shared_requests_total counter
lbkit_shared_requests_total{shared="rate"} 5
lbkit_shared_requests_total{shared="table"} 10
# HELP lbkit_shared_errors_total Total number of failed or dropped writes to the shared store.
# TYPE lbkit_shared_errors_total counter
lbkit_shared_errors_total{shared="rate"} 0
lbkit_shared_errors_total{shared="table"} 1
`
	if err := promtest.CollectAndCompare(c, strings.NewReader(want), "lbkit_shared_requests_total", "lbkit_shared_fallbacks_total", "lbkit_shared_errors_total"); err != nil {
		t.Error(err)
	}
	c.RemoveShared("table")
	c.RemoveShared("rate")
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Errorf("after removal: %d series, want 0", n)
	}
}
