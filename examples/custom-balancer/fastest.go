package main

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Fastest sends each request to the server with the lowest expected wait:
// its moving average of response times × (its requests in flight + 1). It
// learns response times as an lb.Observer: the Pool reports every finished
// request. Servers not measured yet go first, so every server gets tried.
type Fastest struct {
	avg sync.Map // server name → *atomic.Int64, moving average in ns
}

func (f *Fastest) stat(name string) *atomic.Int64 {
	if v, ok := f.avg.Load(name); ok {
		return v.(*atomic.Int64)
	}
	v, _ := f.avg.LoadOrStore(name, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Pick implements lb.Balancer.
func (f *Fastest) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	best, bestCost := s.Servers[0], int64(math.MaxInt64)
	for _, sv := range s.Servers {
		if cost := (f.stat(sv.Name).Load() + 1) * (sv.Active() + 1); cost < bestCost {
			best, bestCost = sv, cost
		}
	}
	return best, nil
}

// Observe implements lb.Observer: the newest response counts for 1/4.
func (f *Fastest) Observe(sv *lb.Server, o lb.Outcome) {
	d := o.Duration.Nanoseconds()
	if o.Failed() {
		d = time.Second.Nanoseconds() // failing servers look slow
	}
	a := f.stat(sv.Name)
	if old := a.Load(); old != 0 {
		d = old + (d-old)/4
	}
	a.Store(max(d, 1))
}
