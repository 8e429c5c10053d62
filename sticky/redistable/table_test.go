package redistable_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky/redistable"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	redis.SetLogger(quietLogger{}) // go-redis logs every failed dial
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newClient returns a go-redis client of addr, closed when the test ends.
func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// runTable starts tb.Run until the test ends.
func runTable(t *testing.T, tb *redistable.Table) {
	t.Helper()
	must(t, tb.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tb.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// instance is one load balancer of the fleet: its own pool, table and
// frontend, listening on its own loopback address.
type instance struct {
	table *redistable.Table
	pool  *lb.Pool
	addr  string
}

func newInstance(t *testing.T, listenIP, redisAddr string, bal lb.Balancer, servers []lb.Server) *instance {
	t.Helper()
	// A loaded machine must not fall back: TestTimeout checks the bound.
	table := &redistable.Table{Client: newClient(t, redisAddr), Prefix: "test:" + t.Name() + ":",
		RetryAfter: 100 * time.Millisecond, Timeout: 2 * time.Second}
	runTable(t, table)
	pool := &lb.Pool{Name: "tcp", Balancer: bal, Affinity: table}
	must(t, pool.Update(servers))
	fe := &lb.TCPFrontend{Name: "l4", Backend: pool}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- fe.Serve(ln) }()
	t.Cleanup(func() {
		fe.Close()
		if err := <-done; err != lb.ErrFrontendClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return &instance{table: table, pool: pool, addr: ln.Addr().String()}
}

// dialFrom connects to addr from the loopback address src and returns the
// name the server greets with.
func dialFrom(t *testing.T, src, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("from %s to %s: %v", src, addr, err)
	}
	return name[:len(name)-1]
}

func nameServers(t *testing.T, names ...string) []lb.Server {
	var servers []lb.Server
	for _, n := range names {
		servers = append(servers, lb.Server{Name: n, Addr: testutil.NameServer(t, n).Addr})
	}
	return servers
}

// TestFleet pins clients through instance A (round robin) and checks that
// instance B, whose own balancer would send them all to the first server,
// sends each to A's choice, read from Redis.
func TestFleet(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	servers := nameServers(t, "a", "b", "c")
	a := newInstance(t, "127.0.0.2", rs.Addr, &balancer.RoundRobin{}, servers)
	b := newInstance(t, "127.0.0.3", rs.Addr, balancer.First{}, servers)

	const clients = 9
	src := func(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }
	home := map[string]string{}
	count := map[string]int{}
	for i := range clients {
		home[src(i)] = dialFrom(t, src(i), a.addr)
		count[home[src(i)]]++
	}
	if len(count) != 3 {
		t.Fatalf("A spread the clients as %v, want all three servers", count)
	}
	testutil.Eventually(t, "A's bindings in Redis", func() bool { return a.table.Stats().Writes >= clients })

	// Redis names servers by address.
	v, err := newClient(t, rs.Addr).Get(context.Background(), "test:"+t.Name()+":"+src(0)).Result()
	must(t, err)
	if want := servers[map[string]int{"a": 0, "b": 1, "c": 2}[home[src(0)]]].Addr; v != want {
		t.Fatalf("Redis binds %s to %q, want %q", src(0), v, want)
	}

	for round := range 2 {
		for i := range clients {
			if got := dialFrom(t, src(i), b.addr); got != home[src(i)] {
				t.Fatalf("round %d: client %s went to %s through B, to %s through A", round, src(i), got, home[src(i)])
			}
		}
	}
	st := b.table.Stats()
	if st.Found != clients || st.Hits != clients || st.Fallbacks != 0 {
		t.Fatalf("B's stats = %+v, want %d found in Redis, then %d local hits, no fallback", st, clients, clients)
	}
}

// TestRedisDown stops Redis: traffic keeps flowing on local decisions,
// counted as fallbacks, and the bindings made meanwhile reach Redis, and
// the other instance, once it is back.
func TestRedisDown(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	servers := nameServers(t, "a", "b", "c")
	a := newInstance(t, "127.0.0.2", rs.Addr, &balancer.RoundRobin{}, servers)
	b := newInstance(t, "127.0.0.3", rs.Addr, balancer.First{}, servers)

	// One client pinned while Redis is up.
	before := dialFrom(t, "127.0.2.1", a.addr)
	testutil.Eventually(t, "the first binding in Redis", func() bool { return a.table.Stats().Writes >= 1 })

	rs.Stop(t)
	if got := dialFrom(t, "127.0.2.1", a.addr); got != before {
		t.Fatalf("with Redis down, A sent its known client to %s, pinned to %s", got, before)
	}
	// New clients are balanced locally and stay pinned locally.
	homes := map[string]string{}
	for i := range 6 {
		src := fmt.Sprintf("127.0.3.%d", i+1)
		homes[src] = dialFrom(t, src, a.addr)
		if again := dialFrom(t, src, a.addr); again != homes[src] {
			t.Fatalf("with Redis down, %s went to %s then %s", src, homes[src], again)
		}
	}
	if st := a.table.Stats(); st.Fallbacks == 0 {
		t.Fatalf("A's stats with Redis down = %+v, want fallbacks", st)
	}
	fb := b.table.Stats().Fallbacks
	dialFrom(t, "127.0.3.200", b.addr)
	if got := b.table.Stats().Fallbacks; got <= fb {
		t.Fatalf("B's fallbacks went from %d to %d on a new client with Redis down", fb, got)
	}
	if got := a.table.SharedStats().Fallbacks; got == 0 {
		t.Fatalf("SharedStats().Fallbacks = %d", got)
	}

	rs.Start(t) // without persistence: Redis comes back empty
	rc := newClient(t, rs.Addr)
	for src, home := range homes {
		want := servers[map[string]int{"a": 0, "b": 1, "c": 2}[home]].Addr
		testutil.Eventually(t, "the binding of "+src+" in Redis", func() bool {
			if got := dialFrom(t, src, a.addr); got != home {
				t.Fatalf("after the restart, %s went to %s, pinned to %s", src, got, home)
			}
			v, _ := rc.Get(context.Background(), "test:"+t.Name()+":"+src).Result()
			return v == want
		})
		found := b.table.Stats().Found
		if got := dialFrom(t, src, b.addr); got != home {
			t.Fatalf("after the restart, %s went to %s through B, to %s through A", src, got, home)
		}
		if b.table.Stats().Found != found+1 {
			t.Fatalf("B did not find %s in Redis", src)
		}
	}
}

// TestFirstWriterWins pins one client to different servers on two tables:
// the second write reads back the first one's binding and adopts it.
func TestFirstWriterWins(t *testing.T) {
	rs := testservers.Redis(t)
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "x", Addr: "192.0.2.1:1"}, {Name: "y", Addr: "192.0.2.2:1"}}))
	snap := pool.Snapshot()
	x, y := snap.Servers[0], snap.Servers[1]
	info := lb.PickInfo{Client: netip.MustParseAddrPort("198.51.100.7:4000")}

	ta := &redistable.Table{Client: newClient(t, rs.Addr), Prefix: "w:"}
	tb := &redistable.Table{Client: newClient(t, rs.Addr), Prefix: "w:"}
	runTable(t, ta)
	ta.Pin(info, x)
	testutil.Eventually(t, "A's write", func() bool { return ta.Stats().Writes == 1 })
	tb.Pin(info, y) // as if B had balanced the client before A's write
	runTable(t, tb)
	testutil.Eventually(t, "B's read-back", func() bool { return tb.Stats().Conflicts == 1 })
	if got, ok := tb.Lookup(snap, info); !ok || got != x {
		t.Fatalf("B looks the client up as %v, %v; want %s, the first writer's", got, ok, x.Addr)
	}

	// A move away from a server that left replaces the binding.
	pool2 := &lb.Pool{Name: "p"}
	must(t, pool2.Update([]lb.Server{{Name: "y", Addr: "192.0.2.2:1"}}))
	snap2 := pool2.Snapshot()
	if _, pin := ta.LookupPin(snap2, info); pin != lb.PinMoved {
		t.Fatalf("pin to a removed server = %v, want moved", pin)
	}
	ta.Pin(info, snap2.Servers[0])
	testutil.Eventually(t, "the move in Redis", func() bool {
		v, _ := newClient(t, rs.Addr).Get(context.Background(), "w:198.51.100.7").Result()
		return v == "192.0.2.2:1"
	})
	if st := ta.Stats(); st.Conflicts != 0 {
		t.Fatalf("A's move counted a conflict: %+v", st)
	}
}

// TestTimeout sends lookups to a server that accepts connections and never
// answers: each returns within the timeout, as a fallback, and the next
// ones within RetryAfter do not wait at all.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	table := &redistable.Table{Client: newClient(t, ln.Addr().String()), Timeout: 20 * time.Millisecond, RetryAfter: time.Hour}
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "x", Addr: "192.0.2.1:1"}}))
	snap := pool.Snapshot()
	start := time.Now()
	for i := range 5 {
		info := lb.PickInfo{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 1)}
		if _, pin := table.LookupPin(snap, info); pin != lb.PinNone {
			t.Fatalf("lookup = %v", pin)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("5 lookups took %v with a 20ms timeout", d)
	}
	if st := table.Stats(); st.Fallbacks != 5 || st.Lookups != 1 {
		t.Fatalf("stats = %+v, want 5 fallbacks of which 1 lookup sent", st)
	}
}

func TestValidate(t *testing.T) {
	c := newClient(t, testutil.ClosedAddr(t))
	noDeadlines := redis.NewClient(&redis.Options{Addr: testutil.ClosedAddr(t)})
	defer noDeadlines.Close()
	for i, tc := range []struct {
		t  *redistable.Table
		ok bool
	}{
		{&redistable.Table{Client: c}, true},
		{&redistable.Table{}, false},
		{&redistable.Table{Client: c, IPv6Prefix: 129}, false},
		{&redistable.Table{Client: c, IPv4Prefix: -1}, false},
		{&redistable.Table{Client: c, Timeout: -1}, false},
		{&redistable.Table{Client: noDeadlines}, false},
	} {
		if err := tc.t.Validate(); (err == nil) != tc.ok {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
}

// TestNoContextTimeouts checks that a Client without
// ContextTimeoutEnabled, used without Validate, is never asked: lookups
// stay local instead of waiting for go-redis's ReadTimeout.
func TestNoContextTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String()})
	t.Cleanup(func() { c.Close() })
	table := &redistable.Table{Client: c, Logger: slog.New(slog.DiscardHandler)}
	if !errors.Is(table.Validate(), redistable.ErrConfig) {
		t.Fatal("Validate accepts a Client without ContextTimeoutEnabled")
	}
	pool := &lb.Pool{Name: "p"}
	must(t, pool.Update([]lb.Server{{Name: "x", Addr: "192.0.2.1:1"}}))
	info := lb.PickInfo{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 1}), 1)}
	if _, pin := table.LookupPin(pool.Snapshot(), info); pin != lb.PinNone {
		t.Fatalf("lookup = %v", pin)
	}
	if st := table.Stats(); st.Lookups != 0 {
		t.Fatalf("stats = %+v, want no lookup sent to Redis", st)
	}
}
