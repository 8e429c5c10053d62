package balancer

import "testing"

// TestLeastConnCoverage checks the bound LeastConn documents: from any
// counter position, the windows of ⌈n/32⌉ consecutive picks together
// compare every server, each window holds at most 32 servers, and with
// every server idle each server starts a scan within 32·⌈n/32⌉ picks.
func TestLeastConnCoverage(t *testing.T) {
	for _, n := range []int{1, 7, 32, 33, 64, 100, 1000, 1024, 3000} {
		p := (n + leastConnWindow - 1) / leastConnWindow
		period := leastConnWindow * p
		seen := make([]int, n)
		starts := make([]int, n)
		for c0 := range period + p {
			round := c0 + 1
			for c := c0; c < c0+p; c++ {
				lo, hi, first := leastConnTile(n, uint64(c))
				if hi-lo > leastConnWindow || first < lo || first >= hi {
					t.Fatalf("n=%d c=%d: window [%d,%d) from %d", n, c, lo, hi, first)
				}
				for i := lo; i < hi; i++ {
					seen[i] = round
				}
			}
			for i, r := range seen {
				if r != round {
					t.Fatalf("n=%d: server %d not compared by the %d picks from counter %d", n, i, p, c0)
				}
			}
		}
		for c0 := range period {
			round := c0 + 1
			for c := c0; c < c0+period; c++ {
				_, _, first := leastConnTile(n, uint64(c))
				starts[first] = round
			}
			for i, r := range starts {
				if r != round {
					t.Fatalf("n=%d: server %d starts no scan in the %d picks from counter %d", n, i, period, c0)
				}
			}
		}
	}
}
