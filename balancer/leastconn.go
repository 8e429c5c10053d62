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
// size, against a microsecond or more for a scan of 1000 servers): the n
// servers are cut into P = ⌈n/32⌉ consecutive tiles of at most 32 servers
// each (an exact partition), and pick number c compares the whole of tile
// c mod P, starting its scan at offset ⌊c/P⌋ within the tile. So any P
// consecutive picks compare every server exactly once: a server left idle
// is found within ⌈n/32⌉ picks from any point, ties spread over every
// server (with every server idle, each is picked within 32·⌈n/32⌉ picks),
// and loads stay within a few leases of each other
// (TestLeastConnLargePools and TestLeastConnCoverage state the bounds).
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

// leastConnTile returns the window of pick number c on n servers: the
// servers lo to hi-1 (a tile of at most 32), scanned from first on and
// wrapping within the tile. Tiles j = c mod P of P = ⌈n/32⌉ partition the
// servers exactly, so any P consecutive c cover every server.
func leastConnTile(n int, c uint64) (lo, hi, first int) {
	if n <= leastConnWindow {
		return 0, n, int(c % uint64(n))
	}
	p := uint64((n + leastConnWindow - 1) / leastConnWindow)
	j, m := c%p, c/p
	lo = int(j * uint64(n) / p)
	hi = int((j + 1) * uint64(n) / p)
	return lo, hi, lo + int(m%uint64(hi-lo))
}

// Pick returns the least loaded server relative to its weight, among all
// servers up to 32 and among a tile of at most 32 beyond.
func (l *LeastConn) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	n := len(s.Servers)
	lo, hi, first := leastConnTile(n, l.next.Add(1))
	best := s.Servers[first]
	ba, bw := best.Active(), int64(best.EffectiveWeight())
	for i := first + 1; i != first; i++ {
		if i == hi {
			i = lo
			if i == first {
				break
			}
		}
		c := s.Servers[i]
		ca, cw := c.Active(), int64(c.EffectiveWeight())
		if ca*bw < ba*cw {
			best, ba, bw = c, ca, cw
		}
	}
	return best, nil
}
