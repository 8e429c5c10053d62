package balancer

import (
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// LeastConn sends each pick to the server with the fewest active
// connections or requests relative to its weight: a beats b when
// a.Active()·b.weight < b.Active()·a.weight (integer arithmetic, no
// division). Ties spread: the scan starts at a rotating offset, so idle
// servers are taken in turn rather than the first one every time.
//
// Pick scans every server of the snapshot (one atomic load each): O(n),
// about a nanosecond per server, which is fine for the tens or hundreds of
// servers of a backend; P2C gives a similar balance in O(1) for thousands.
// Active counts are those of the Pool (Acquire to Lease.Done), so the
// balance reflects work still in flight, which suits long connections and
// requests of uneven cost.
//
// The zero value is ready to use; a LeastConn is safe for concurrent use and
// must not be copied after first use.
type LeastConn struct {
	next atomic.Uint64
}

// Pick returns the least loaded server relative to its weight.
func (l *LeastConn) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	n := len(s.Servers)
	start := int(l.next.Add(1) % uint64(n))
	best := s.Servers[start]
	ba, bw := best.Active(), int64(best.EffectiveWeight())
	for k := 1; k < n; k++ {
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
