package balancer_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
)

// Smooth weighted round robin: a has five times the weight of b and c, and
// its turns are spread out rather than taken in a row.
func ExampleRoundRobin() {
	p := &lb.Pool{Balancer: &balancer.RoundRobin{}}
	err := p.Update([]lb.Server{
		{Name: "a", Addr: "127.0.0.1:8081", Weight: 5},
		{Name: "b", Addr: "127.0.0.1:8082"},
		{Name: "c", Addr: "127.0.0.1:8083"},
	})
	if err != nil {
		panic(err)
	}
	var order []string
	for range 14 {
		lease, err := p.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			panic(err)
		}
		order = append(order, lease.Server.Name)
		lease.Done(lb.Outcome{})
	}
	fmt.Println(strings.Join(order, " "))
	// Output: a a b a c a a a a b a c a a
}

// ByName reads the algorithm from a configuration file or a flag.
func ExampleByName() {
	for _, spec := range []string{"roundrobin", "leastconn", "hash:cookie:sid,bounded=1.5"} {
		b, err := balancer.ByName(spec)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %T\n", spec, b)
	}
	_, err := balancer.ByName("fastest")
	fmt.Println(err)
	// Output:
	// roundrobin: *balancer.RoundRobin
	// leastconn: *balancer.LeastConn
	// hash:cookie:sid,bounded=1.5: *balancer.Hash
	// balancer: unknown algorithm "fastest" (valid: roundrobin, leastconn, first, random, p2c, hash, source, hash:header:NAME, hash:cookie:NAME, hash:uri, hash:sni)
}

// Requests carrying the same session cookie go to the same server.
func ExampleHash() {
	p := &lb.Pool{Balancer: &balancer.Hash{Key: balancer.Cookie("sid"), BoundedLoad: 1.25}}
	err := p.Update([]lb.Server{
		{Name: "a", Addr: "127.0.0.1:8081"},
		{Name: "b", Addr: "127.0.0.1:8082"},
		{Name: "c", Addr: "127.0.0.1:8083"},
	})
	if err != nil {
		panic(err)
	}
	pick := func(sid string) string {
		r, _ := http.NewRequest("GET", "http://example.com/", nil)
		r.AddCookie(&http.Cookie{Name: "sid", Value: sid})
		lease, err := p.Acquire(context.Background(), lb.PickInfo{Request: r})
		if err != nil {
			panic(err)
		}
		defer lease.Done(lb.Outcome{})
		return lease.Server.Name
	}
	first := pick("alice")
	fmt.Println(pick("alice") == first, pick("alice") == first)
	// Output: true true
}

// Any function can balance: this one prefers servers of the local zone and
// falls back to the first server.
func Example_balancerFunc() {
	local := lb.BalancerFunc(func(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
		for _, sv := range s.Servers {
			if sv.Meta["zone"] == "local" {
				return sv, nil
			}
		}
		return s.Servers[0], nil
	})
	p := &lb.Pool{Balancer: local}
	err := p.Update([]lb.Server{
		{Name: "far", Addr: "10.1.0.1:80", Meta: map[string]string{"zone": "remote"}},
		{Name: "near", Addr: "10.0.0.1:80", Meta: map[string]string{"zone": "local"}},
	})
	if err != nil {
		panic(err)
	}
	lease, err := p.Acquire(context.Background(), lb.PickInfo{})
	if err != nil {
		panic(err)
	}
	defer lease.Done(lb.Outcome{})
	fmt.Println(lease.Server.Name)
	// Output: near
}
