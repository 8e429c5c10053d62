package redisrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/redisrate"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	redis.SetLogger(quietLogger{}) // go-redis logs every failed dial
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// slowMachine is the Timeout of the tests that need Redis's answers: a
// loaded machine must not fall back there (TestTimeout checks the bound;
// a stopped Redis refuses connections at once).
const slowMachine = 2 * time.Second

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// startInstance serves a ReverseProxy over backend with lim on listenIP,
// as one load balancer of the fleet, and returns its URL.
func startInstance(t *testing.T, listenIP, backend string, lim *lb.Limits) string {
	t.Helper()
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: backend}}))
	proxy := &lb.ReverseProxy{Pool: pool, Limits: lim}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	must(t, err)
	url := "http://" + ln.Addr().String() + "/"
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second, ConnContext: lim.ConnContext}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, lim.Listener(ln), time.Second, proxy) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return url
}

// clientFrom returns an HTTP client whose connections come from src.
func clientFrom(t *testing.T, src string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func status(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestFleetRate sends one client's requests round robin to three load
// balancers sharing a limit of Rate per second with Burst, as fast as they
// answer, for about a second: the fleet admits at most Burst + Rate·w in
// the w seconds the load lasted, where three independent limits would
// admit three times as much.
func TestFleetRate(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	backend := testutil.HTTPBackend(t, "a")
	const (
		ratePerSec = 20
		burst      = 5
		window     = time.Second
		maxReqs    = 3000
	)
	var urls []string
	var limiters []*redisrate.Limiter
	for i := range 3 {
		rl := &redisrate.Limiter{Client: newClient(t, rs.Addr), Prefix: "fleet:", Rate: ratePerSec, Burst: burst, Instances: 3,
			Timeout: slowMachine}
		must(t, rl.Validate())
		limiters = append(limiters, rl)
		urls = append(urls, startInstance(t, fmt.Sprintf("127.0.0.%d", i+2), backend.Addr, &lb.Limits{ClientRater: rl}))
	}
	c := clientFrom(t, "127.0.4.1")
	admitted, perInstance, n := 0, [3]int{}, 0
	start := time.Now()
	for ; n < maxReqs && time.Since(start) < window; n++ {
		switch code := status(t, c, urls[n%3]); code {
		case http.StatusOK:
			admitted++
			perInstance[n%3]++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("request %d: status %d", n, code)
		}
	}
	elapsed := time.Since(start)
	bound := burst + int(ratePerSec*elapsed.Seconds()) + 1
	t.Logf("%d requests in %v: %d admitted (%v per instance), bound %d", n, elapsed, admitted, perInstance, bound)
	if n < 3*bound {
		t.Skipf("only %d requests in %v: too few to tell a shared limit from three", n, elapsed)
	}
	if admitted > bound {
		t.Fatalf("the fleet admitted %d requests in %v, more than Burst + Rate·w = %d", admitted, elapsed, bound)
	}
	if admitted < burst+int(ratePerSec*elapsed.Seconds()/2) {
		t.Fatalf("the fleet admitted only %d requests in %v at %d/s", admitted, elapsed, ratePerSec)
	}
	for i, rl := range limiters {
		if st := rl.Stats(); st.Fallbacks != 0 || st.Allowed != uint64(perInstance[i]) {
			t.Errorf("instance %d: stats %+v, admitted %d", i, st, perInstance[i])
		}
	}
}

// TestRedisDown stops Redis: decisions go on, by the local share and
// counted as fallbacks, and return to Redis once it is back.
func TestRedisDown(t *testing.T) {
	rs := testservers.Redis(t)
	rl := &redisrate.Limiter{Client: newClient(t, rs.Addr), Rate: 10, Burst: 10, Instances: 2,
		RetryAfter: 50 * time.Millisecond, Timeout: slowMachine}
	must(t, rl.Validate())
	key := netip.MustParseAddr("198.51.100.1")
	ctx := context.Background()
	if ok, _ := rl.Allow(ctx, key); !ok {
		t.Fatal("first request refused")
	}
	if st := rl.Stats(); st.Requests != 1 || st.Fallbacks != 0 {
		t.Fatalf("stats with Redis up = %+v", st)
	}

	rs.Stop(t)
	start := time.Now()
	allowed := 0
	const reqs = 20
	for range reqs {
		if ok, _ := rl.Allow(ctx, key); ok {
			allowed++
		}
	}
	elapsed := time.Since(start)
	// The local share: Burst/Instances at once, Rate/Instances per second.
	if most := 5 + int(5*elapsed.Seconds()) + 1; allowed < 5 || allowed > most {
		t.Fatalf("with Redis down, %d of %d requests in %v passed; want between 5 and %d", allowed, reqs, elapsed, most)
	}
	if st := rl.Stats(); st.Fallbacks != reqs || st.Errors == 0 {
		t.Fatalf("stats with Redis down = %+v, want %d fallbacks and errors", st, reqs)
	}

	rs.Start(t)
	other := netip.MustParseAddr("198.51.100.2")
	testutil.Eventually(t, "a decision by Redis", func() bool {
		before := rl.Stats()
		rl.Allow(ctx, other)
		after := rl.Stats()
		return after.Fallbacks == before.Fallbacks && after.Requests == before.Requests+1
	})
	if n, err := newClient(t, rs.Addr).Exists(ctx, "lbkit:rate:198.51.100.2").Result(); err != nil || n != 1 {
		t.Fatalf("the client's key in Redis: %d, %v", n, err)
	}
}

// TestRefusedLocally checks that a client Redis refused is refused
// without a round trip until Redis said one would pass, with that wait as
// the retry.
func TestRefusedLocally(t *testing.T) {
	rs := testservers.Redis(t)
	rl := &redisrate.Limiter{Client: newClient(t, rs.Addr), Rate: 1, Burst: 1, Timeout: slowMachine}
	key := netip.MustParseAddr("2001:db8::1")
	ctx := context.Background()
	if ok, _ := rl.Allow(ctx, key); !ok {
		t.Fatal("first request refused")
	}
	ok, retry := rl.Allow(ctx, key)
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("second request: %v, retry %v; want refused, retry in (0, 1s]", ok, retry)
	}
	ok, retry2 := rl.Allow(ctx, key)
	if ok || retry2 > retry {
		t.Fatalf("third request: %v, retry %v; want refused, retry at most %v", ok, retry2, retry)
	}
	if st := rl.Stats(); st.Requests != 2 || st.Blocked != 1 || st.Refused != 2 {
		t.Fatalf("stats = %+v, want 2 requests to Redis, 1 local refusal", st)
	}
}

// TestTimeout asks a server that never answers: a decision takes about
// Timeout, and those within RetryAfter do not wait at all.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	held := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		close(held)
		for c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c:
			default:
				c.Close()
			}
		}
	}()
	rl := &redisrate.Limiter{Client: newClient(t, ln.Addr().String()), Rate: 100, Timeout: 20 * time.Millisecond, RetryAfter: time.Hour}
	start := time.Now()
	for i := range 5 {
		if ok, _ := rl.Allow(context.Background(), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); !ok {
			t.Fatalf("decision %d refused by the local share", i)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("5 decisions took %v with a 20ms timeout", d)
	}
	if st := rl.Stats(); st.Fallbacks != 5 || st.Requests != 1 {
		t.Fatalf("stats = %+v, want 5 fallbacks of which 1 request sent", st)
	}
}

func TestValidate(t *testing.T) {
	c := newClient(t, testutil.ClosedAddr(t))
	noDeadlines := redis.NewClient(&redis.Options{Addr: testutil.ClosedAddr(t)})
	defer noDeadlines.Close()
	for i, tc := range []struct {
		l  *redisrate.Limiter
		ok bool
	}{
		{&redisrate.Limiter{Client: c, Rate: 1}, true},
		{&redisrate.Limiter{Rate: 1}, false},
		{&redisrate.Limiter{Client: c}, false},
		{&redisrate.Limiter{Client: c, Rate: 1, Burst: -1}, false},
		{&redisrate.Limiter{Client: noDeadlines, Rate: 1}, false},
	} {
		if err := tc.l.Validate(); (err == nil) != tc.ok {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
}

// TestNoContextTimeouts checks that a Client without
// ContextTimeoutEnabled, used without Validate, is never asked: the local
// share decides, instead of a wait for go-redis's ReadTimeout.
func TestNoContextTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String()})
	t.Cleanup(func() { c.Close() })
	rl := &redisrate.Limiter{Client: c, Rate: 100, Logger: slog.New(slog.DiscardHandler)}
	if !errors.Is(rl.Validate(), redisrate.ErrConfig) {
		t.Fatal("Validate accepts a Client without ContextTimeoutEnabled")
	}
	for i := range 3 {
		if ok, _ := rl.Allow(context.Background(), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); !ok {
			t.Fatalf("decision %d refused by the local share", i)
		}
	}
	if st := rl.Stats(); st.Requests != 0 || st.Fallbacks != 3 {
		t.Fatalf("stats = %+v, want 3 local decisions and no request to Redis", st)
	}
}

// TestLocalTableBounded checks that the sharded local table keeps at most
// MaxClients clients under concurrent decisions for many clients.
func TestLocalTableBounded(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never asked: no ContextTimeoutEnabled
	t.Cleanup(func() { c.Close() })
	rl := &redisrate.Limiter{Client: c, Rate: 100, MaxClients: 128, Logger: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				rl.Allow(context.Background(), netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}))
			}
		})
	}
	wg.Wait()
	if st := rl.Stats(); st.Clients == 0 || st.Clients > 128 || st.Fallbacks != 4000 {
		t.Fatalf("stats = %+v, want 1 to 128 clients and 4000 local decisions", st)
	}
}
