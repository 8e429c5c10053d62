package health_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
)

// switchProbe passes or fails by server name, as the test decides; it
// counts checks and the most in flight at once.
type switchProbe struct {
	mu       sync.Mutex
	fail     map[string]error
	checks   map[string]int
	hold     time.Duration // each check takes this long
	inflight atomic.Int32
	maxIn    atomic.Int32
}

func newSwitchProbe() *switchProbe {
	return &switchProbe{fail: map[string]error{}, checks: map[string]int{}}
}

func (p *switchProbe) set(key string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[key] = err
}

func (p *switchProbe) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checks[key]
}

func (p *switchProbe) Check(ctx context.Context, t health.Target) error {
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	for {
		m := p.maxIn.Load()
		if n <= m || p.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	if p.hold > 0 {
		select {
		case <-time.After(p.hold):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	key := t.Pool + "/" + t.Server.Name
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks[key]++
	if err := p.fail[key]; err != nil {
		return err
	}
	return p.fail[t.Server.Name]
}

// events records a Monitor's events.
type events struct {
	mu  sync.Mutex
	evs []health.Event
}

func (e *events) add(ev health.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) take() []health.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.evs
	e.evs = nil
	return out
}

func newPool(t *testing.T, name string, srvs ...lb.Server) *lb.Pool {
	t.Helper()
	p := &lb.Pool{Name: name}
	if err := p.Update(srvs); err != nil {
		t.Fatal(err)
	}
	return p
}

func state(p *lb.Pool, name string) (lb.State, string) {
	for _, s := range p.Status() {
		if s.Name == name {
			return s.State, s.Reason
		}
	}
	return 255, "no such server"
}

// watch runs m on pool inside the bubble until the test ends.
func watch(t *testing.T, m *health.Monitor, pool *lb.Pool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Watch(ctx, pool)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

var errDown = errors.New("connection refused")

// TestStateMachineTiming walks one server through fall and rise at the
// exact times the defaults give (no jitter): interval 3 s while up, 0.5 s
// while changing state or down, fall 3, rise 2.
func TestStateMachineTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		var ev events
		m := &health.Monitor{Probe: probe, Jitter: -1, OnChange: ev.add}
		pool := newPool(t, "web", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
		watch(t, m, pool)
		start := time.Now()
		at := func(d time.Duration, want lb.State) {
			t.Helper()
			time.Sleep(start.Add(d).Sub(time.Now()))
			synctest.Wait()
			if got, reason := state(pool, "a"); got != want {
				t.Fatalf("at %v: state %v (%s), want %v", d, got, reason, want)
			}
		}
		at(0, lb.StateUp)
		probe.set("a", errDown)
		at(2999*time.Millisecond, lb.StateUp) // next check at 3 s
		at(3*time.Second, lb.StateGoingDown)
		at(3499*time.Millisecond, lb.StateGoingDown)
		at(3500*time.Millisecond, lb.StateGoingDown)
		at(4*time.Second, lb.StateDown) // 3 failures: within fall × interval + timeout
		if _, reason := state(pool, "a"); reason != "connection refused" {
			t.Fatalf("reason %q", reason)
		}
		at(10*time.Second, lb.StateDown)
		probe.set("a", nil)
		at(10*time.Second+500*time.Millisecond, lb.StateGoingUp)
		at(11*time.Second, lb.StateUp) // within rise × transient interval
		if _, reason := state(pool, "a"); reason != "" {
			t.Fatalf("reason %q once up", reason)
		}
		// A single failure while up is forgiven by the next pass.
		at(14*time.Second, lb.StateUp)
		probe.set("a", errDown)
		at(17*time.Second, lb.StateGoingDown)
		probe.set("a", nil)
		at(17500*time.Millisecond, lb.StateUp)

		var got []string
		for _, e := range ev.take() {
			got = append(got, fmt.Sprintf("%v %s>%s %q", e.Time.Sub(start), e.From, e.To, e.Reason))
		}
		want := []string{
			`3s up>going down "connection refused"`,
			`4s going down>down "connection refused"`,
			`10.5s down>going up "connection refused"`,
			`11s going up>up ""`,
			`17s up>going down "connection refused"`,
			`17.5s going down>up ""`,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events:\n%q\nwant\n%q", got, want)
		}
	})
}

func TestInitialState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial lb.State
		fail    bool
		before  lb.State // until the first verdict
		after   lb.State
	}{
		{"up until a check fails", lb.StateUp, true, lb.StateUp, lb.StateDown},
		{"up and passing", lb.StateUp, false, lb.StateUp, lb.StateUp},
		{"down until a check passes", lb.StateDown, false, lb.StateDown, lb.StateUp},
		{"down and failing", lb.StateDown, true, lb.StateDown, lb.StateDown},
		{"going up: down until a check passes", lb.StateGoingUp, false, lb.StateDown, lb.StateUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				probe.hold = 100 * time.Millisecond
				if tc.fail {
					probe.set("a", errDown)
				}
				m := &health.Monitor{Probe: probe, Jitter: -1}
				pool := &lb.Pool{Name: "p", InitialState: tc.initial}
				if err := pool.Update([]lb.Server{{Name: "a", Addr: "10.0.0.1:80"}}); err != nil {
					t.Fatal(err)
				}
				watch(t, m, pool)
				time.Sleep(50 * time.Millisecond)
				synctest.Wait()
				st, reason := state(pool, "a")
				if st != tc.before {
					t.Fatalf("before the first verdict: %v, want %v", st, tc.before)
				}
				if st == lb.StateDown && reason != health.ReasonPending {
					t.Fatalf("reason %q, want %q", reason, health.ReasonPending)
				}
				time.Sleep(100 * time.Millisecond)
				synctest.Wait()
				if st, _ := state(pool, "a"); st != tc.after {
					t.Fatalf("after the first verdict: %v, want %v", st, tc.after)
				}
			})
		})
	}
}

func TestMaintenanceAndDrainLeftAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		m := &health.Monitor{Probe: probe, Jitter: -1}
		pool := newPool(t, "p", lb.Server{Name: "a", Addr: "10.0.0.1:80"}, lb.Server{Name: "b", Addr: "10.0.0.2:80"})
		watch(t, m, pool)
		synctest.Wait()
		pool.SetState("a", lb.StateMaintenance, "operator")
		probe.set("a", errDown)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if st, reason := state(pool, "a"); st != lb.StateMaintenance || reason != "operator" {
			t.Fatalf("maintenance overridden: %v %q", st, reason)
		}
		if probe.count("p/a") < 3 {
			t.Fatalf("a server in maintenance is still checked; %d checks", probe.count("p/a"))
		}
		// Leaving maintenance: the next verdict applies.
		pool.SetState("a", lb.StateUp, "")
		time.Sleep(time.Second)
		synctest.Wait()
		if st, _ := state(pool, "a"); st != lb.StateDown {
			t.Fatalf("after maintenance: %v, want down", st)
		}
		// Draining is separate from health: the server stays drained.
		go pool.Drain(t.Context(), "b")
		synctest.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, s := range pool.Status() {
			if s.Name == "b" && (!s.Draining || s.State != lb.StateUp) {
				t.Fatalf("b: draining %v, state %v", s.Draining, s.State)
			}
		}
		if pool.Snapshot().Len() != 0 {
			t.Fatalf("snapshot has %d servers, want none", pool.Snapshot().Len())
		}
	})
}

func TestConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		probe.hold = 200 * time.Millisecond
		m := &health.Monitor{Probe: probe, Concurrency: 8, Interval: time.Second, Jitter: -1}
		var srvs []lb.Server
		for i := range 200 {
			srvs = append(srvs, lb.Server{Name: fmt.Sprint(i), Addr: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1)})
		}
		pool := newPool(t, "p", srvs...)
		watch(t, m, pool)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := probe.maxIn.Load(); got != 8 {
			t.Fatalf("at most %d checks in flight, want 8", got)
		}
		total := 0
		for i := range 200 {
			total += probe.count("p/" + fmt.Sprint(i))
		}
		// 8 workers × 3 s / 0.2 s per check.
		if total < 100 || total > 120 {
			t.Fatalf("%d checks in 3 s", total)
		}
	})
}

func TestMembershipAndPerPoolState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		m := &health.Monitor{Probe: probe, Jitter: -1, Interval: time.Second}
		// Two pools with a server of the same name on the same address.
		p1 := newPool(t, "one", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
		p2 := newPool(t, "two", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
		watch(t, m, p1)
		watch(t, m, p2)
		probe.set("one/a", errDown)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st, _ := state(p1, "a"); st != lb.StateDown {
			t.Fatalf("pool one: %v, want down", st)
		}
		if st, _ := state(p2, "a"); st != lb.StateUp {
			t.Fatalf("pool two shares state with pool one: %v", st)
		}
		// A new server is checked; a removed one no longer is.
		if err := p1.Update([]lb.Server{{Name: "b", Addr: "10.0.0.2:80"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		before := probe.count("one/a")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := probe.count("one/a"); n != before {
			t.Fatalf("removed server checked %d more times", n-before)
		}
		if n := probe.count("one/b"); n < 5 {
			t.Fatalf("new server checked %d times in 5 s", n)
		}
	})
}

func TestJitterSpreadsChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var times []time.Duration
		start := time.Now()
		probe := health.ProbeFunc(func(ctx context.Context, _ health.Target) error {
			mu.Lock()
			times = append(times, time.Since(start))
			mu.Unlock()
			return nil
		})
		m := &health.Monitor{Probe: probe, Interval: time.Second, Jitter: 0.5}
		watch(t, m, newPool(t, "p", lb.Server{Name: "a", Addr: "10.0.0.1:80"}))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		distinct := map[time.Duration]bool{}
		for i := 1; i < len(times); i++ {
			gap := times[i] - times[i-1]
			if gap < 500*time.Millisecond || gap > time.Second {
				t.Fatalf("gap %v outside [0.5 s, 1 s]", gap)
			}
			distinct[gap] = true
		}
		if len(times) < 31 || len(distinct) < 10 {
			t.Fatalf("%d checks, %d distinct gaps: no jitter", len(times), len(distinct))
		}
	})
}

func TestPassiveEjection(t *testing.T) {
	connErr := errors.New("dial tcp: connection refused")
	for _, tc := range []struct {
		name     string
		outcome  lb.Outcome
		statusFn func(int) bool
		ejects   bool
	}{
		{"connect errors", lb.Outcome{Err: connErr, Connect: true}, nil, true},
		{"5xx", lb.Outcome{Status: 503}, nil, true},
		{"4xx", lb.Outcome{Status: 404}, nil, false},
		{"5xx not counted", lb.Outcome{Status: 502}, func(int) bool { return false }, false},
		{"429 counted", lb.Outcome{Status: 429}, func(c int) bool { return c == 429 }, true},
		{"error after connecting", lb.Outcome{Err: errors.New("reset by client")}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				var ev events
				m := &health.Monitor{Probe: probe, Jitter: -1, OnChange: ev.add,
					Passive: health.Passive{Failures: 3, Status: tc.statusFn, Backoff: 10 * time.Second}}
				pool := newPool(t, "p", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
				pool.HealthChecker = m
				watch(t, m, pool)
				synctest.Wait()
				use := func(o lb.Outcome) {
					l, err := pool.Acquire(context.Background(), lb.PickInfo{})
					if err != nil {
						t.Fatal(err)
					}
					l.Done(o)
				}
				use(tc.outcome)
				use(tc.outcome)
				use(lb.Outcome{}) // a success resets the count
				use(tc.outcome)
				use(tc.outcome)
				synctest.Wait()
				if st, _ := state(pool, "a"); st != lb.StateUp {
					t.Fatalf("after 2 failures: %v", st)
				}
				use(tc.outcome)
				synctest.Wait()
				st, reason := state(pool, "a")
				if !tc.ejects {
					if st != lb.StateUp {
						t.Fatalf("ejected by %+v", tc.outcome)
					}
					return
				}
				if st != lb.StateDown || reason != "passive: 3 consecutive failures on traffic" {
					t.Fatalf("after 3 failures: %v %q", st, reason)
				}
				// The back-off holds although active checks pass.
				time.Sleep(9900 * time.Millisecond)
				synctest.Wait()
				if st, _ := state(pool, "a"); st != lb.StateDown {
					t.Fatalf("back in %v", st)
				}
				// Then rise passes bring it back.
				time.Sleep(100 * time.Millisecond)
				synctest.Wait()
				if st, _ := state(pool, "a"); st != lb.StateGoingUp {
					t.Fatalf("after the back-off: %v", st)
				}
				time.Sleep(500 * time.Millisecond)
				synctest.Wait()
				if st, _ := state(pool, "a"); st != lb.StateUp {
					t.Fatalf("after rise: %v", st)
				}
				evs := ev.take()
				if len(evs) != 3 || !evs[0].Passive || evs[0].To != lb.StateDown {
					t.Fatalf("events %+v", evs)
				}
			})
		})
	}
}

func TestPassiveWithoutProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &health.Monitor{Jitter: -1, Passive: health.Passive{Failures: 1, Backoff: 5 * time.Second}}
		pool := newPool(t, "p", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
		pool.HealthChecker = m
		watch(t, m, pool)
		synctest.Wait()
		l, err := pool.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		l.Done(lb.Outcome{Status: 500})
		synctest.Wait()
		if st, _ := state(pool, "a"); st != lb.StateDown {
			t.Fatalf("not ejected: %v", st)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st, _ := state(pool, "a"); st != lb.StateUp {
			t.Fatalf("not back after the back-off: %v", st)
		}
	})
}

func TestCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := health.ProbeFunc(func(ctx context.Context, _ health.Target) error {
			<-ctx.Done()
			return fmt.Errorf("read: %w", ctx.Err())
		})
		m := &health.Monitor{Probe: probe, Jitter: -1, Timeout: 200 * time.Millisecond}
		pool := newPool(t, "p", lb.Server{Name: "a", Addr: "10.0.0.1:80"})
		watch(t, m, pool)
		time.Sleep(199 * time.Millisecond)
		synctest.Wait()
		if st, _ := state(pool, "a"); st != lb.StateUp {
			t.Fatalf("before the timeout: %v", st)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st, reason := state(pool, "a"); st != lb.StateDown || reason != "read: context deadline exceeded" {
			t.Fatalf("after the timeout: %v %q", st, reason)
		}
	})
}

func TestCheckPortAndKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		addrs := map[string]string{}
		failing := map[string]bool{}
		probe := health.ProbeFunc(func(_ context.Context, tg health.Target) error {
			mu.Lock()
			defer mu.Unlock()
			addrs[tg.Server.Name] = tg.Addr
			if failing[tg.Addr] {
				return errDown
			}
			return nil
		})
		m := &health.Monitor{Probe: probe, Port: 9000, Jitter: -1}
		pool := newPool(t, "p",
			lb.Server{Name: "port", Addr: "10.0.0.1:80"},
			lb.Server{Name: "meta", Addr: "10.0.0.2:80", Meta: map[string]string{health.MetaCheckPort: "9100"}},
			lb.Server{Name: "bad", Addr: "[::1]:80", Meta: map[string]string{health.MetaCheckPort: "99999"}},
		)
		mu.Lock()
		failing["10.0.0.1:9000"] = true
		mu.Unlock()
		watch(t, m, pool)
		synctest.Wait()
		mu.Lock()
		want := map[string]string{"port": "10.0.0.1:9000", "meta": "10.0.0.2:9100", "bad": "[::1]:9000"}
		if fmt.Sprint(addrs) != fmt.Sprint(want) {
			t.Errorf("checked %v, want %v", addrs, want)
		}
		mu.Unlock()
		if st, _ := state(pool, "port"); st != lb.StateDown {
			t.Fatalf("port: %v", st)
		}
		// Another check address is another check: its state starts over.
		err := pool.Update([]lb.Server{{Name: "port", Addr: "10.0.0.1:80", Meta: map[string]string{health.MetaCheckPort: "9200"}}})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st, _ := state(pool, "port"); st != lb.StateUp {
			t.Fatalf("after the check port changed: %v", st)
		}
	})
}
