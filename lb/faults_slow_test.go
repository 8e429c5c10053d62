package lb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// Heads of the slow clients: a request whose headers never end
// (slowloris), and one whose body never ends.
const (
	slowHeadersHead = "GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: "
	slowBodyHead    = "POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Length: 1000\r\n\r\n"
)

// openSlow opens n connections to addr, from a few goroutines, and sends
// head on each. The connections are closed on cleanup.
func openSlow(tb testing.TB, addr string, n int, head string) []net.Conn {
	tb.Helper()
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err == nil {
					_, err = io.WriteString(c, head)
				}
				if err != nil {
					errc <- err
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	select {
	case err := <-errc:
		tb.Fatalf("opening slow client: %v", err)
	default:
	}
	return conns
}

// dribble writes one byte of b to every connection each interval until stop
// is closed: clients that are slow, not dead.
func dribbleAll(conns []net.Conn, b string, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, b)
		}
	}
}

// TestFaultL7SlowClients holds thousands of slow clients on the L7 path,
// half dribbling their headers and half their bodies, while a probe client
// sends legitimate requests, on new and on reused connections: every probe
// request must succeed. Without the race detector there are 5000 slow
// clients (about 15,000 descriptors in this process: client and proxy ends
// of each, and proxy and server ends of each slow body); with it, whose
// goroutine limit is 8128 (5000 slow clients need about 7500), 3000.
func TestFaultL7SlowClients(t *testing.T) { forEngines(t, testFaultL7SlowClients) }

func testFaultL7SlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of connections")
	}
	testutil.CheckLeaks(t)
	n := 5000
	if raceEnabled {
		n = 3000
	}
	backend := testutil.HTTPBackend(t, "good")
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Name: "good", Addr: backend.Addr}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: time.Minute}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ln := &countingListener{Listener: inner}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- lb.Serve(ctx, frontendOf(t, srv), ln, time.Second, proxy) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()

	start := time.Now()
	heads := openSlow(t, addr, n/2, slowHeadersHead)
	bodies := openSlow(t, addr, n/2, slowBodyHead)
	testutil.Eventually(t, "the slow clients to be accepted", func() bool { return ln.accepted.Load() >= int64(n) })
	testutil.Eventually(t, "the slow bodies to be forwarded", func() bool { return pool.Status()[0].Active == int64(n/2) })
	t.Logf("%d slow clients in place after %v, %d goroutines", n, time.Since(start), runtime.NumGoroutine())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { dribbleAll(heads, "a", 200*time.Millisecond, stop) })
	wg.Go(func() { dribbleAll(bodies, "b", 200*time.Millisecond, stop) })
	stopDribble := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopDribble()

	// The probe: bounded in count and in time.
	reused := client()
	defer reused.CloseIdleConnections()
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(3 * time.Second)
	ok := 0
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		c := reused
		if i%2 == 1 {
			c = fresh
		}
		code, body, _ := get(t, c, "http://"+addr+"/")
		if code != http.StatusOK || body != "good\n" {
			t.Fatalf("probe request %d: %d %q", i, code, body)
		}
		ok++
	}
	t.Logf("%d probe requests succeeded next to %d slow clients", ok, n)
	if ok < 10 {
		t.Fatalf("only %d probe requests in 3s", ok)
	}

	// The slow clients leave; what they held is released.
	stopDribble()
	for _, c := range append(heads, bodies...) {
		c.Close()
	}
	testutil.Eventually(t, "the slow bodies' leases to end", func() bool { return pool.Status()[0].Active == 0 })
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// idleHoldServer accepts connections and holds them without a goroutine
// each, so that it adds nothing but the sockets to a measurement; release
// closes those it holds.
func idleHoldServer(tb testing.TB) (addr string, release func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(tb, err)
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
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
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
		held = nil
	}
	tb.Cleanup(func() {
		ln.Close()
		<-done
		release()
	})
	return ln.Addr().String(), release
}

// inUse is the memory the process holds for live objects and stacks.
func inUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkSlowClientMemory reports the memory a frontend holds per idle
// client that sent part of a request head and then nothing: at L7 an
// http.Server serving a ReverseProxy (the client waits in the header
// read), at L4 a TCPFrontend serving a Pool (the session is connected to
// its server and waits in the copy). Each iteration opens slowClients
// clients, measures HeapInuse+StackInuse before and after (client sockets
// of the benchmark included, a few hundred bytes each), and closes them.
func BenchmarkSlowClientMemory(b *testing.B) {
	const slowClients = 1000
	// run measures the clients on addr; placed reports whether the
	// frontend holds them all, given the goroutines running before they
	// came.
	run := func(b *testing.B, addr string, placed func(goroutines int) bool, release func()) {
		b.ReportAllocs()
		var total float64
		for b.Loop() {
			g := runtime.NumGoroutine()
			before := inUse()
			conns := openSlow(b, addr, slowClients, slowHeadersHead)
			testutil.Eventually(b, "the slow clients to be held", func() bool { return placed(g) })
			after := inUse()
			total += float64(after) - float64(before)
			for _, c := range conns {
				c.Close()
			}
			release()
			testutil.Eventually(b, "the slow clients to leave", func() bool { return runtime.NumGoroutine() <= g })
		}
		b.ReportMetric(total/float64(b.N)/slowClients, "bytes/client")
	}
	b.Run("L7", func(b *testing.B) {
		server, release := idleHoldServer(b)
		pool := &lb.Pool{}
		must(b, pool.Update([]lb.Server{{Addr: server}}))
		proxy := &lb.ReverseProxy{Pool: pool}
		srv := &http.Server{Handler: proxy, ReadHeaderTimeout: time.Minute}
		addr := serveBench(b, srv, proxy)
		// A connection's goroutine blocks in the header read.
		run(b, addr, func(g int) bool { return runtime.NumGoroutine() >= g+slowClients }, release)
	})
	b.Run("L4", func(b *testing.B) {
		server, release := idleHoldServer(b)
		pool := &lb.Pool{}
		must(b, pool.Update([]lb.Server{{Addr: server}}))
		fe := &lb.TCPFrontend{Backend: pool}
		addr := serveBench(b, fe)
		run(b, addr, func(int) bool { return pool.Status()[0].Active == slowClients }, release)
	})
}

// serveBench serves fe on a loopback listener until the benchmark ends.
func serveBench(b *testing.B, fe lb.Frontend, also ...lb.Shutdowner) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- lb.Serve(ctx, fe, ln, 0, also...) }()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, lb.ErrFrontendClosed) {
			b.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
