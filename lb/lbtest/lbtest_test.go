package lbtest_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// rotate is a minimal custom balancer: a plain rotation.
type rotate struct{ n atomic.Uint64 }

func (r *rotate) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	return s.Servers[r.n.Add(1)%uint64(len(s.Servers))], nil
}

func TestRun(t *testing.T) {
	lbtest.Run(t, func() lb.Balancer { return &rotate{} })
	lbtest.Run(t, func() lb.Balancer {
		return lb.BalancerFunc(func(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) { return s.Servers[0], nil })
	})
}

func TestPoolAndServers(t *testing.T) {
	srv := lbtest.Servers(3)
	if srv[2].Name != "s2" || srv[2].Addr != "127.0.0.1:10002" {
		t.Fatalf("Servers(3)[2] = %+v", srv[2])
	}
	p := lbtest.Pool(t, &rotate{}, srv...)
	if n := p.Snapshot().Len(); n != 3 {
		t.Fatalf("pool snapshot has %d servers", n)
	}
	counts := lbtest.Distribution(&rotate{}, p, 300, nil)
	lbtest.AssertShares(t, counts, map[string]float64{"s0": 1, "s1": 1, "s2": 1}, 0)
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestAssertShares(t *testing.T) {
	tests := []struct {
		name   string
		counts map[string]int
		want   map[string]float64
		tol    float64
		fails  int
	}{
		{"exact", map[string]int{"a": 100, "b": 200}, map[string]float64{"a": 1, "b": 2}, 0, 0},
		{"within", map[string]int{"a": 104, "b": 196}, map[string]float64{"a": 0.1, "b": 0.2}, 0.05, 0},
		{"outside", map[string]int{"a": 120, "b": 180}, map[string]float64{"a": 1, "b": 2}, 0.05, 2},
		{"unexpected server", map[string]int{"a": 100, "x": 1}, map[string]float64{"a": 1}, 0.05, 1},
		{"wanted at zero", map[string]int{"a": 100, "b": 1}, map[string]float64{"a": 1, "b": 0}, 0.05, 1},
		{"missing server", map[string]int{"a": 100}, map[string]float64{"a": 1, "b": 1}, 0.05, 2},
		{"no picks", map[string]int{}, map[string]float64{"a": 1}, 0.05, 1},
	}
	for _, tt := range tests {
		r := &recorder{TB: t}
		lbtest.AssertShares(r, tt.counts, tt.want, tt.tol)
		if len(r.errs) != tt.fails {
			t.Errorf("%s: %d failures %q, want %d", tt.name, len(r.errs), r.errs, tt.fails)
		}
	}
}
