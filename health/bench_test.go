package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
)

// observed returns a Monitor with passive checks watching one server, and
// that server as the Pool publishes it, once the Monitor counts its
// outcomes (three failures ejected it).
func observed(tb testing.TB) (*health.Monitor, *lb.Server, func()) {
	m := &health.Monitor{Passive: health.Passive{Failures: 3, Backoff: time.Hour}}
	pool := &lb.Pool{Name: "p", HealthChecker: m}
	if err := pool.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}}); err != nil {
		tb.Fatal(err)
	}
	s := pool.Snapshot().Servers[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for pool.Status()[0].State != lb.StateDown {
		if time.Now().After(deadline) {
			tb.Fatal("passive failures not counted")
		}
		for range 3 {
			m.Observe(s, lb.Outcome{Err: errConn, Connect: true})
		}
		time.Sleep(time.Millisecond)
	}
	return m, s, func() { cancel(); <-done }
}

var errConn = errors.New("connection refused")

func TestObserveDoesNotAllocate(t *testing.T) {
	m, s, stop := observed(t)
	defer stop()
	fail := lb.Outcome{Err: errConn, Connect: true}
	ok := lb.Outcome{Status: 200}
	if n := testing.AllocsPerRun(1000, func() {
		m.Observe(s, fail)
		m.Observe(s, ok)
	}); n != 0 {
		t.Fatalf("%v allocations per Observe pair", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	m, s, stop := observed(b)
	defer stop()
	fail := lb.Outcome{Err: errConn, Connect: true}
	ok := lb.Outcome{Status: 200}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if i%2 == 0 {
				m.Observe(s, fail)
			} else {
				m.Observe(s, ok)
			}
		}
	})
}
