package balancer

import (
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// leastConnWindow is how many servers a LeastConn pick compares.
const leastConnWindow = 32

// LeastConn sends each pick to the server with the fewest active
// connections or requests relative to its weight: a beats b when
// a.Active()·b.weight < b.Active()·a.weight (integer arithmetic, no
// division).
//
// Up to 32 servers, the pick is exact: it compares every server, starting
// at a rotating offset so that ties spread (idle servers are taken in
// turn). Beyond, it is approximate, to keep picks O(1) (about 40 ns at any
// size, against a microsecond or more for a scan of 1000 servers): each
// pick compares a window of 32 consecutive servers, and consecutive picks
// start their windows a stride apart (the stride is at least 32 and
// coprime with the number of servers, fixed per snapshot). So every server
// is compared at least once every ⌈n/32⌉ picks and starts a window once
// every n picks: a server left idle is found within ⌈n/32⌉ picks, ties
// still spread over every server, and loads stay within a few leases of
// each other (TestLeastConnLargePools states the bounds).
//
// Active counts are those of the Pool (Acquire to Lease.Done), so the
// balance reflects work still in flight, which suits long connections and
// requests of uneven cost.
//
// The zero value is ready to use; a LeastConn is safe for concurrent use and
// must not be copied after first use.
type LeastConn struct {
	next atomic.Uint64
}

// leastConnStride is what LeastConn.Prepare returns.
type leastConnStride int

// Prepare returns the stride between the windows of consecutive picks on
// s: the smallest number from 32 up that is coprime with its size.
func (l *LeastConn) Prepare(s *lb.Snapshot) any {
	n := len(s.Servers)
	if n <= leastConnWindow {
		return leastConnStride(1)
	}
	k := leastConnWindow
	for gcd(int64(k), int64(n)) != 1 {
		k++
	}
	return leastConnStride(k)
}

// Pick returns the least loaded server relative to its weight, among all
// servers up to 32 and among a window of 32 beyond.
func (l *LeastConn) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	n := len(s.Servers)
	c := l.next.Add(1)
	window, stride := n, uint64(1)
	if n > leastConnWindow {
		window = leastConnWindow
		if st, ok := s.Prepared().(leastConnStride); ok {
			stride = uint64(st)
		}
	}
	start := int(c * stride % uint64(n))
	best := s.Servers[start]
	ba, bw := best.Active(), int64(best.EffectiveWeight())
	for k := 1; k < window; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		c := s.Servers[i]
		ca, cw := c.Active(), int64(c.EffectiveWeight())
		if ca*bw < ba*cw {
			best, ba, bw = c, ca, cw
		}
	}
	return best, nil
}
