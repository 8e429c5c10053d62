package balancer_test

import (
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
)

// TestHashAcrossInstances builds three load balancers, each with its own
// Pool and Hash, over the same servers and weights listed in different
// orders: with no state shared, they send every client to the same server,
// also after a server goes down on all of them, and once an instance that
// started while it was down has seen it come back.
func TestHashAcrossInstances(t *testing.T) {
	base := []lb.Server{
		{Name: "a", Addr: "192.0.2.1:80", Weight: 1},
		{Name: "b", Addr: "192.0.2.2:80", Weight: 2},
		{Name: "c", Addr: "192.0.2.3:80", Weight: 1},
		{Name: "d", Addr: "192.0.2.4:80", Weight: 3},
		{Name: "e", Addr: "192.0.2.5:80", Weight: 1},
	}
	type instance struct {
		pool *lb.Pool
		hash *balancer.Hash
	}
	newInstance := func(order ...int) instance {
		in := instance{pool: &lb.Pool{Name: "web"}, hash: &balancer.Hash{}}
		in.pool.Balancer = in.hash
		var list []lb.Server
		for _, i := range order {
			list = append(list, base[i])
		}
		if err := in.pool.Update(list); err != nil {
			t.Fatal(err)
		}
		return in
	}
	fleet := []instance{newInstance(0, 1, 2, 3, 4), newInstance(4, 3, 2, 1, 0), newInstance(2, 0, 4, 1, 3)}
	keys := clientKeys(5000)
	agree := func(what string, fleet []instance) []string {
		t.Helper()
		want := placement(t, fleet[0].hash, fleet[0].pool, keys)
		for i, in := range fleet[1:] {
			got := placement(t, in.hash, in.pool, keys)
			for k := range keys {
				if got[k] != want[k] {
					t.Fatalf("%s: instance %d sends %v to %s, instance 0 to %s", what, i+1, keys[k].Client, got[k], want[k])
				}
			}
		}
		return want
	}
	before := agree("same servers", fleet)
	spread := map[string]int{}
	for _, s := range before {
		spread[s]++
	}
	if len(spread) != len(base) {
		t.Fatalf("keys spread over %v, want all %d servers", spread, len(base))
	}

	for _, in := range fleet {
		in.pool.SetState("d", lb.StateDown, "test")
	}
	down := agree("d down", fleet)
	for k := range keys {
		if before[k] != "d" && down[k] != before[k] {
			t.Fatalf("with d down, %v moved from %s to %s", keys[k].Client, before[k], down[k])
		}
	}

	// A new instance starts while d is down: its table lacks d, so a few
	// keys of the others may differ, until d is back; then it agrees
	// with the others again.
	late := instance{pool: &lb.Pool{Name: "web", InitialState: lb.StateDown}, hash: &balancer.Hash{}}
	late.pool.Balancer = late.hash
	if err := late.pool.Update(base); err != nil {
		t.Fatal(err)
	}
	for _, s := range base {
		if s.Name != "d" {
			late.pool.SetState(s.Name, lb.StateUp, "test")
		}
	}
	differ := 0
	for k, s := range placement(t, late.hash, late.pool, keys) {
		if s != down[k] {
			differ++
		}
	}
	t.Logf("with d down, the late instance places %d of %d keys elsewhere", differ, len(keys))
	fleet = append(fleet, late)
	for _, in := range fleet {
		in.pool.SetState("d", lb.StateUp, "test")
	}
	if after := agree("d back", fleet); len(after) != len(before) {
		t.Fatal("placement size changed")
	} else {
		for k := range keys {
			if after[k] != before[k] {
				t.Fatalf("d back: %v on %s, was on %s", keys[k].Client, after[k], before[k])
			}
		}
	}
}
