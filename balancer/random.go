package balancer

import (
	"math/rand/v2"

	"github.com/lbkit/lbkit/lb"
)

// Random sends each pick to a server drawn at random with probability
// proportional to its weight. Draws use math/rand/v2's top-level functions,
// which are lock-free; Prepare stores the cumulative weights of the snapshot
// so that a draw is a binary search, O(log n).
//
// Random has no state; the zero value is ready to use and safe for
// concurrent use. On a Snapshot not prepared by a Random or P2C (one built
// by hand, not published by a Pool) draws are uniform.
type Random struct{}

// Pick returns a server drawn by weight.
func (Random) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	return s.Servers[draw(s)], nil
}

// Prepare computes the cumulative weights of s, or returns nil when all
// weights are equal.
func (Random) Prepare(s *lb.Snapshot) any { return prepareCumulative(s) }

// P2C is the power of two random choices: it draws two different servers
// (by weight, like Random) and sends the pick to the one with fewer active
// connections or requests relative to its weight; on a tie, the first drawn.
//
// It balances nearly as well as LeastConn at O(1) per pick, whatever the
// number of servers, and avoids the herd effect of LeastConn when many
// proxies share servers but not their counts. When servers are idle it
// behaves like Random.
//
// P2C has no state; the zero value is ready to use and safe for concurrent
// use.
type P2C struct{}

// Pick returns the less loaded of two servers drawn by weight.
func (P2C) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	n := len(s.Servers)
	if n == 1 {
		return s.Servers[0], nil
	}
	i := draw(s)
	j := draw(s)
	if j == i {
		j = draw(s)
		if j == i { // a dominant weight: take the next server
			j = i + 1
			if j == n {
				j = 0
			}
		}
	}
	a, b := s.Servers[i], s.Servers[j]
	if b.Active()*int64(a.EffectiveWeight()) < a.Active()*int64(b.EffectiveWeight()) {
		return b, nil
	}
	return a, nil
}

// Prepare computes the cumulative weights of s, or returns nil when all
// weights are equal.
func (P2C) Prepare(s *lb.Snapshot) any { return prepareCumulative(s) }

// cumulative holds the running sums of the weights of a snapshot's servers.
type cumulative struct {
	sums  []uint64 // sums[i] = weight[0] + … + weight[i]
	total uint64
}

func prepareCumulative(s *lb.Snapshot) any {
	equal := true
	for _, sv := range s.Servers {
		if sv.EffectiveWeight() != s.Servers[0].EffectiveWeight() {
			equal = false
			break
		}
	}
	if equal {
		return nil
	}
	c := &cumulative{sums: make([]uint64, len(s.Servers))}
	for i, sv := range s.Servers {
		c.total += uint64(sv.EffectiveWeight())
		c.sums[i] = c.total
	}
	return c
}

// draw returns the index of a server of s drawn by weight.
func draw(s *lb.Snapshot) int {
	c, ok := s.Prepared().(*cumulative)
	if !ok || len(c.sums) != len(s.Servers) {
		return rand.IntN(len(s.Servers))
	}
	x := rand.Uint64N(c.total)
	// The first index whose running sum exceeds x.
	lo, hi := 0, len(c.sums)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if c.sums[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
