package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// firstServer always picks the first pickable server, so that tests know
// where each connection goes: to the first server, then (on a retry, which
// avoids it) to the next.
func firstServer() lb.Balancer {
	return lb.BalancerFunc(func(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) { return s.Servers[0], nil })
}

// echoSession sends size bytes through addr to an echo server, half-closes and
// reads them back.
func echoSession(addr string, size int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		return werr
	}
	if err != nil || len(got) != size {
		return fmt.Errorf("echo: %d bytes, %v; want %d", len(got), err, size)
	}
	return nil
}

// parallel runs f count times in parallel and fails t with the first error.
func parallel(t *testing.T, count int, f func() error) {
	t.Helper()
	errc := make(chan error, count)
	var wg sync.WaitGroup
	for range count {
		wg.Go(func() { errc <- f() })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		must(t, err)
	}
}

// scrape reads stats in a loop, as an exporter would, until stop is
// called: under -race, it shows that Stats is safe beside traffic.
func scrape(read ...func()) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			for _, r := range read {
				r()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func TestStatsL4(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "tcp", Balancer: firstServer()}
	must(t, pool.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "echo", Addr: echo.Addr, MaxConns: 100}}))
	fe, addr := startL4(t, pool)

	// n sessions each fail on dead, are retried and redispatched to echo;
	// then dead leaves and m sessions go to echo directly.
	const n, m, size = 8, 5, 3000
	stop := scrape(func() { pool.Stats() }, func() { fe.Stats() })
	parallel(t, n, func() error { return echoSession(addr, size) })
	pool.SetState("dead", lb.StateMaintenance, "test")
	parallel(t, m, func() error { return echoSession(addr, size) })
	stop()
	testutil.Eventually(t, "sessions to end", func() bool {
		return fe.Stats().ConnCur == 0 && pool.Stats().Cur == 0
	})

	fs := fe.Stats()
	if fs.Name != "test" || fs.ConnTotal != n+m || fs.ConnMax < 1 || fs.ConnMax > n ||
		fs.BytesIn != (n+m)*size || fs.BytesOut != (n+m)*size ||
		fs.ConnRateMax < 1 || fs.Errors != 0 || fs.Requests != 0 {
		t.Errorf("frontend stats = %+v", fs)
	}

	ps := pool.Stats()
	if ps.Name != "tcp" || ps.Total != 2*n+m || ps.Cur != 0 || ps.Max < 1 ||
		ps.ConnectErrors != n || ps.Retries != n || ps.Redispatches != n ||
		ps.BytesIn != (n+m)*size || ps.BytesOut != (n+m)*size ||
		ps.ConnectTime.Count != n+m || ps.TotalTime.Count != n+m || ps.Requests != 0 ||
		ps.Active != 1 || ps.Backup != 0 || !ps.Up() || len(ps.Servers) != 2 {
		t.Fatalf("pool stats = %+v", ps)
	}
	dead, ok := ps.Servers[0], ps.Servers[1]
	if dead.Name != "dead" || dead.State != lb.StateMaintenance || dead.Reason != "test" ||
		dead.Total != n || dead.ConnectErrors != n || dead.Retries != n || dead.Redispatches != n ||
		dead.BytesIn != 0 || dead.TotalTime.Count != 0 || dead.ConnectTime.Count != 0 {
		t.Errorf("dead server stats = %+v", dead)
	}
	if ok.Name != "echo" || ok.Addr != echo.Addr || ok.Weight != 1 || ok.MaxConns != 100 || ok.State != lb.StateUp ||
		ok.Total != n+m || ok.Cur != 0 || ok.Max < 1 || ok.Max > n || ok.ConnectErrors != 0 || ok.Retries != 0 ||
		ok.BytesIn != (n+m)*size || ok.BytesOut != (n+m)*size ||
		ok.ConnectTime.Count != n+m || ok.TotalTime.Count != n+m || ok.TotalTime.Sum <= 0 {
		t.Errorf("echo server stats = %+v", ok)
	}
}

// TestStatsL4BytesWhileOpen checks that the bytes of an open L4 session show
// in the statistics as they move, not only when the session ends.
func TestStatsL4BytesWhileOpen(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	pool := &lb.Pool{Name: "tcp"}
	must(t, pool.Update([]lb.Server{{Name: "echo", Addr: echo.Addr}}))
	fe, addr := startL4(t, pool)
	c := dial(t, addr)
	defer c.Close()
	buf := make([]byte, 1000)
	for round := int64(1); round <= 3; round++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := ioReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		want := round * 1000
		testutil.Eventually(t, fmt.Sprintf("%d bytes each way", want), func() bool {
			fs, ps := fe.Stats(), pool.Stats()
			sv := ps.Servers[0]
			return fs.BytesIn == want && fs.BytesOut == want && ps.BytesIn == want && ps.BytesOut == want &&
				sv.BytesIn == want && sv.BytesOut == want
		})
		if ps := pool.Stats(); ps.Cur != 1 || ps.TotalTime.Count != 0 || fe.Stats().ConnCur != 1 {
			t.Fatalf("session not open in stats: %+v", ps)
		}
	}
}

func TestStatsL7(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web", Balancer: firstServer()}
	must(t, pool.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "a", Addr: a.Addr}}))
	broken := &lb.Pool{Name: "broken", Retries: -1}
	must(t, broken.Update([]lb.Server{{Name: "gone", Addr: testutil.ClosedAddr(t)}}))
	proxy := &lb.ReverseProxy{Name: "front", Pool: pool, Route: func(r *http.Request) *lb.Pool {
		if r.URL.Path == "/broken" {
			return broken
		}
		return nil
	}}
	url := startL7Hooked(t, proxy, true)
	c := client()
	defer c.CloseIdleConnections()

	// n requests in parallel, each failing to connect to dead first, then
	// one of each kind.
	const n = 24
	stop := scrape(func() { pool.Stats() }, func() { proxy.Stats() })
	parallel(t, n, func() error {
		resp, err := c.Get(url + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "a\n" {
			return fmt.Errorf("GET / = %d %q, %v", resp.StatusCode, body, err)
		}
		return nil
	})
	stop()
	if code, _, _ := get(t, c, url+"/status?code=404"); code != 404 {
		t.Fatalf("404 request: %d", code)
	}
	if code, _, _ := get(t, c, url+"/status?code=503"); code != 503 {
		t.Fatalf("503 request: %d", code)
	}
	payload := strings.Repeat("0123456789", 10)
	resp, err := c.Post(url+"/echo", "text/plain", strings.NewReader(payload))
	must(t, err)
	echoed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(echoed) != payload {
		t.Fatalf("echo = %q", echoed)
	}
	if code, _, _ := get(t, c, url+"/broken"); code != http.StatusBadGateway {
		t.Fatalf("/broken: %d, want 502", code)
	}
	// A client that gives up while the server thinks.
	impatient := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{}}
	if _, err := impatient.Get(url + "/slow?ms=5000"); err == nil {
		t.Fatal("impatient client got a response")
	}
	impatient.CloseIdleConnections()
	c.CloseIdleConnections()

	const served = n + 3 // with a response from a
	testutil.Eventually(t, "requests to end", func() bool {
		fs := proxy.Stats()
		return pool.Stats().Cur == 0 && fs.ConnCur == 0 && fs.ClientAborts == 1
	})
	ps := pool.Stats()
	wantOut := int64(n*2 + 2 + 2 + len(payload)) // "a\n" bodies and the echo
	if ps.Requests != served+1 || ps.Total != 2*(served+1) ||
		ps.Responses != (lb.ResponseStats{Class2xx: n + 1, Class4xx: 1, Class5xx: 1}) ||
		ps.ResponseErrors != 0 || ps.ClientAborts != 1 || ps.ConnectErrors != served+1 || ps.Retries != served+1 || ps.Redispatches != served+1 ||
		ps.BytesIn != int64(len(payload)) || ps.BytesOut != wantOut ||
		ps.ResponseTime.Count != served || ps.TotalTime.Count != served+1 || ps.ConnectTime.Count < 1 {
		t.Errorf("pool stats = %+v", ps)
	}
	if sv := ps.Servers[1]; sv.Name != "a" || sv.Requests != served+1 || sv.Total != served+1 ||
		sv.Responses.Total() != served || sv.ClientAborts != 1 || sv.BytesOut != wantOut || sv.ConnectTime.Count != ps.ConnectTime.Count {
		t.Errorf("server a stats = %+v", sv)
	}
	if sv := ps.Servers[0]; sv.Name != "dead" || sv.Requests != 0 || sv.ConnectErrors != served+1 || sv.Redispatches != served+1 {
		t.Errorf("server dead stats = %+v", sv)
	}
	if bs := broken.Stats(); bs.ConnectErrors != 1 || bs.Retries != 0 || bs.Requests != 0 {
		t.Errorf("broken pool stats = %+v", bs)
	}
	fs := proxy.Stats()
	if fs.Name != "front" || fs.Requests != served+2 ||
		fs.Responses != (lb.ResponseStats{Class2xx: n + 1, Class4xx: 1, Class5xx: 2}) ||
		fs.Errors != 1 || fs.ClientAborts != 1 || fs.BytesIn != int64(len(payload)) || fs.BytesOut != wantOut ||
		fs.ConnTotal < 2 || fs.ConnMax < 1 || fs.ConnRateMax < 1 {
		t.Errorf("frontend stats = %+v", fs)
	}
}

// TestStatsQueue runs in a synctest bubble, whose clock makes queue times
// exact.
func TestStatsQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := lb.Pool{Name: "q", QueueTimeout: time.Second}
		must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1", MaxConns: 1}}))
		ctx := context.Background()
		first, err := p.Acquire(ctx, lb.PickInfo{})
		must(t, err)
		const q = 3
		var wg sync.WaitGroup
		for range q {
			wg.Go(func() {
				l, err := p.Acquire(ctx, lb.PickInfo{})
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(100 * time.Millisecond)
				l.Done(lb.Outcome{})
			})
		}
		synctest.Wait()
		if st := p.Stats(); st.QueueCur != q || st.QueueMax != q || st.Cur != 1 {
			t.Fatalf("queued: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
		first.Done(lb.Outcome{})
		wg.Wait()
		st := p.Stats()
		// They waited 100, 200 and 300 ms.
		if st.QueueCur != 0 || st.QueueMax != q || st.QueueTime.Count != q || st.QueueTime.Sum != 600*time.Millisecond ||
			st.Total != q+1 || st.Max != 1 || st.TotalTime.Count != q+1 {
			t.Fatalf("after the queue: %+v", st)
		}
		if sv := st.Servers[0]; sv.QueueTime.Count != q || sv.QueueCur != 0 || sv.Max != 1 {
			t.Fatalf("server: %+v", sv)
		}
		// A timeout counts its wait too.
		l, err := p.Acquire(ctx, lb.PickInfo{})
		must(t, err)
		if _, err := p.Acquire(ctx, lb.PickInfo{}); !errors.Is(err, lb.ErrQueueTimeout) {
			t.Fatalf("Acquire: %v, want queue timeout", err)
		}
		l.Done(lb.Outcome{})
		if st := p.Stats(); st.QueueTime.Count != q+1 || st.QueueTime.Sum != 1600*time.Millisecond {
			t.Fatalf("after a queue timeout: %+v", st.QueueTime)
		}
	})
}

// TestStatsHealth checks what health checks and state changes leave in
// the statistics, on the bubble's clock.
func TestStatsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p lb.Pool
		must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}}))
		if p.RecordCheck("nope", lb.CheckResult{}) {
			t.Fatal("RecordCheck of an unknown server reported true")
		}
		start := time.Now()
		fail := lb.CheckResult{Time: start, Duration: time.Millisecond, Status: "L4CON", Reason: "refused"}
		p.RecordCheck("a", fail)
		p.RecordCheck("a", fail)
		p.SetHealth("a", lb.StateDown, "refused")
		time.Sleep(5 * time.Second)
		h := p.Stats().Servers[0].Health
		if h.Last != fail || h.Fails != 2 || h.Passes != 0 || h.Failures != 2 || h.Downs != 1 || h.Downtime != 5*time.Second {
			t.Fatalf("down: %+v", h)
		}
		p.SetHealth("a", lb.StateUp, "")
		time.Sleep(time.Second)
		pass := lb.CheckResult{Time: time.Now(), Duration: time.Millisecond, Passed: true, Status: "L4OK"}
		p.RecordCheck("a", pass)
		sv := p.Stats().Servers[0]
		if h := sv.Health; h.Last != pass || h.Fails != 0 || h.Passes != 1 || h.Failures != 2 || h.Downs != 1 || h.Downtime != 5*time.Second {
			t.Fatalf("up again: %+v", h)
		}
		if sv.State != lb.StateUp || !sv.Since.Equal(start.Add(5*time.Second)) {
			t.Fatalf("state %v since %v", sv.State, sv.Since)
		}
	})
}

func TestStatsDoNotAllocateOnTheDataPath(t *testing.T) {
	var p lb.Pool
	must(t, p.Update(servers("127.0.0.1:1", "127.0.0.1:2")))
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		l, _ := p.Acquire(ctx, lb.PickInfo{})
		l.Done(lb.Outcome{HTTP: true, Status: 200, Sent: 10, Received: 100})
	})
	if allocs != 0 {
		t.Fatalf("Acquire+Done of an HTTP request allocates %.1f times, want 0", allocs)
	}
	var h lb.Histogram
	if allocs := testing.AllocsPerRun(1000, func() { h.Observe(3 * time.Millisecond) }); allocs != 0 {
		t.Fatalf("Histogram.Observe allocates %.1f times", allocs)
	}
}

func TestHistogram(t *testing.T) {
	var h lb.Histogram
	for _, d := range []time.Duration{0, 50 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Second, time.Hour, -time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if len(s.Bounds) != len(s.Counts) || s.Count != 7 || s.Sum != time.Hour+2*time.Second+4*time.Millisecond+50*time.Microsecond {
		t.Fatalf("snapshot = %+v", s)
	}
	at := func(d time.Duration) uint64 {
		for i, b := range s.Bounds {
			if b == d {
				return s.Counts[i]
			}
		}
		t.Fatalf("no bound %v in %v", d, s.Bounds)
		return 0
	}
	// Cumulative: 0, 50µs, -1s are ≤ 100µs; 1ms is ≤ 1ms; 3ms ≤ 5ms; 2s ≤ 2.5s; 1h only in Count.
	for _, c := range []struct {
		bound time.Duration
		want  uint64
	}{
		{100 * time.Microsecond, 3}, {time.Millisecond, 4}, {2500 * time.Microsecond, 4},
		{5 * time.Millisecond, 5}, {2500 * time.Millisecond, 6}, {5 * time.Minute, 6},
	} {
		if got := at(c.bound); got != c.want {
			t.Errorf("count ≤ %v = %d, want %d", c.bound, got, c.want)
		}
	}
	if m := s.Mean(); m != s.Sum/7 {
		t.Errorf("Mean = %v", m)
	}
}

// TestStatsKeepRemovedServersCounts checks that the backend's totals keep
// what a removed server did once the pool forgets it.
func TestStatsKeepRemovedServersCounts(t *testing.T) {
	var p lb.Pool
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}}))
	ctx := context.Background()
	for range 4 {
		l, err := p.Acquire(ctx, lb.PickInfo{})
		must(t, err)
		l.Done(lb.Outcome{HTTP: true, Status: 200})
	}
	busy, err := p.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	if busy.Server.Name != "a" {
		t.Fatalf("fifth pick = %s, want a", busy.Server.Name)
	}
	must(t, p.Update([]lb.Server{{Name: "b", Addr: "127.0.0.1:2"}}))
	st := p.Stats()
	if len(st.Servers) != 2 || !st.Servers[1].Removed || st.Total != 5 || st.Cur != 1 || st.Requests != 4 {
		t.Fatalf("with a removed and busy: %+v", st)
	}
	busy.Done(lb.Outcome{HTTP: true, Status: 500})
	st = p.Stats()
	if len(st.Servers) != 1 || st.Total != 5 || st.Cur != 0 || st.Requests != 5 ||
		st.Responses != (lb.ResponseStats{Class2xx: 4, Class5xx: 1}) || st.TotalTime.Count != 5 {
		t.Fatalf("after a is forgotten: %+v", st)
	}
}

// TestStatsL7ClientAbortMidBody checks that a client that leaves during a
// response counts as a client abort, with the bytes that went through.
func TestStatsL7ClientAbortMidBody(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}}))
	proxy := &lb.ReverseProxy{Name: "front", Pool: pool}
	url := startL7Hooked(t, proxy, true)
	const size = 64 << 20
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	must(t, err)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(c, "GET /size?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
	must(t, err)
	if _, err := ioReadFull(c, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !(proxy.Stats().ClientAborts == 1 && pool.Stats().Cur == 0) {
		if time.Now().After(deadline) {
			t.Fatalf("no abort: frontend %+v\npool %+v", proxy.Stats(), pool.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	fs, ps := proxy.Stats(), pool.Stats()
	if fs.Responses.Class2xx != 1 || fs.Errors != 0 || fs.BytesOut <= 0 || fs.BytesOut >= size ||
		ps.BytesOut != fs.BytesOut || ps.Requests != 1 || ps.Responses.Class2xx != 1 {
		t.Fatalf("frontend %+v\npool %+v", fs, ps)
	}
}

// TestStatsL7ServerAbortMidBody checks that a server that breaks off a
// response counts as a server abort.
func TestStatsL7ServerAbortMidBody(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}}))
	proxy := &lb.ReverseProxy{Name: "front", Pool: pool}
	url := startL7Hooked(t, proxy, true)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(c, "GET /size?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", 64<<20)
	must(t, err)
	if _, err := ioReadFull(c, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	a.Close() // resets its connections
	io.Copy(io.Discard, c)
	testutil.Eventually(t, "the abort", func() bool { return pool.Stats().ServerAborts == 1 && pool.Stats().Cur == 0 })
	if ps, fs := pool.Stats(), proxy.Stats(); ps.ClientAborts != 0 || fs.ClientAborts != 0 || ps.Servers[0].ServerAborts != 1 || ps.ResponseErrors != 1 {
		t.Fatalf("pool %+v\nfrontend %+v", ps, fs)
	}
}

// TestStatsUpgradedStreamBytesWhileOpen checks that the bytes of an
// upgraded connection (a WebSocket) count while it is open, as an L4
// session's do.
func TestStatsUpgradedStreamBytesWhileOpen(t *testing.T) {
	testutil.CheckLeaks(t)
	ws := testutil.HTTPBackend(t, "ws")
	pool := &lb.Pool{}
	must(t, pool.Update(servers(ws.Addr)))
	proxy := &lb.ReverseProxy{Pool: pool}
	url := startL7Hooked(t, proxy, true)
	c, br := dialUpgrade(t, url)
	defer c.Close()
	var want int64
	for _, line := range []string{"one", "two", "three"} {
		echoLine(t, c, br, line)
		want += int64(len(line) + 1)
		testutil.Eventually(t, fmt.Sprintf("%d bytes each way", want), func() bool {
			ps, fs := pool.Stats(), proxy.Stats()
			return ps.BytesIn == want && ps.BytesOut == want && fs.BytesIn == want && fs.BytesOut == want
		})
	}
	if ps := pool.Stats(); ps.Cur != 1 || ps.Responses.Class1xx != 0 {
		t.Fatalf("stream not in progress: %+v", ps)
	}
	c.Close()
	testutil.Eventually(t, "the stream to end", func() bool { return pool.Stats().Cur == 0 })
	if ps := pool.Stats(); ps.Responses.Class1xx != 1 || ps.Requests != 1 || ps.BytesOut != int64(len("one\ntwo\nthree\n")) {
		t.Fatalf("after the stream: %+v", ps)
	}
}
