package balancer

import (
	"math"
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// MaxSchedule bounds the length of a RoundRobin schedule. Weights whose sum
// (once divided by their greatest common divisor) exceeds it are scaled down
// to fit, every server keeping at least one turn.
const MaxSchedule = 4096

// smoothBudget bounds the work of building a schedule with nginx's
// algorithm, which costs one scan of the servers per turn. Above it the
// schedule is built by earliest virtual deadline, which costs a heap
// operation per turn.
const smoothBudget = 1 << 22

// RoundRobin sends each pick to the next server in turn; weighted servers
// get proportional shares, smoothly interleaved with nginx's smooth weighted
// round robin: weights 5, 1, 1 give the order a a b a c a a.
//
// The order is computed once per snapshot, in Prepare: weights are divided
// by their greatest common divisor and, if they still sum to more than
// MaxSchedule, scaled down to fit (shares are then exact to about
// 1/MaxSchedule; every server keeps at least one turn, so with more than
// MaxSchedule servers the schedule has one turn per server). Equal weights
// need no schedule at all: picks rotate over the servers, whatever their
// number, in O(1) memory. Very large weighted schedules (servers × turns
// above 4M, that is thousands of servers) are ordered by earliest virtual
// deadline instead of nginx's scan: the same shares, equally spread (in any
// prefix of the schedule no server is more than about one turn ahead of or
// behind its share), in another order, at O(log n) per turn.
//
// Pick costs one atomic add: the counter is shared by every snapshot, so a
// change of servers continues the rotation rather than restarting it. On a
// Snapshot not prepared by this balancer (one built by hand, not published
// by a Pool) weights are ignored.
//
// The zero value is ready to use; a RoundRobin is safe for concurrent use
// and must not be copied after first use.
type RoundRobin struct {
	next atomic.Uint64
}

// rrSchedule is the prepared order of a snapshot: indexes into its Servers.
type rrSchedule struct {
	order []uint32
}

// Pick returns the next server of the snapshot's schedule.
func (r *RoundRobin) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	n := r.next.Add(1) - 1
	if sc, ok := s.Prepared().(*rrSchedule); ok {
		return s.Servers[sc.order[n%uint64(len(sc.order))]], nil
	}
	return s.Servers[n%uint64(len(s.Servers))], nil
}

// Prepare computes the smooth weighted order of s. It returns nil when every
// server has the same weight (plain rotation).
func (r *RoundRobin) Prepare(s *lb.Snapshot) any {
	w, sum := reducedWeights(s.Servers)
	if w == nil {
		return nil
	}
	if sum > MaxSchedule {
		w, sum = scaleWeights(w, sum, MaxSchedule)
	}
	var order []uint32
	if int64(len(w))*sum <= smoothBudget {
		order = smoothOrder(w, sum)
	} else {
		order = deadlineOrder(w, sum)
	}
	return &rrSchedule{order: order}
}

// reducedWeights returns the effective weights of servers divided by their
// greatest common divisor, and their sum, or nil when all are equal.
func reducedWeights(servers []*lb.Server) ([]int64, int64) {
	g := int64(0)
	equal := true
	for i, s := range servers {
		w := int64(s.EffectiveWeight())
		g = gcd(g, w)
		if i > 0 && w != int64(servers[0].EffectiveWeight()) {
			equal = false
		}
	}
	if equal {
		return nil, int64(len(servers))
	}
	w := make([]int64, len(servers))
	var sum float64
	for i, s := range servers {
		w[i] = int64(s.EffectiveWeight()) / g
		sum += float64(w[i])
	}
	if sum > math.MaxInt64/2 {
		// Overflow is only possible with absurd weights; scale in floats.
		return scaleFloat(w, sum, MaxSchedule)
	}
	var isum int64
	for _, x := range w {
		isum += x
	}
	return w, isum
}

// scaleWeights scales w so that it sums to about limit, each weight staying
// at least 1, and reduces the result by its gcd again.
func scaleWeights(w []int64, sum, limit int64) ([]int64, int64) {
	return scaleFloat(w, float64(sum), limit)
}

func scaleFloat(w []int64, sum float64, limit int64) ([]int64, int64) {
	out := make([]int64, len(w))
	g := int64(0)
	for i, x := range w {
		out[i] = max(1, int64(math.Round(float64(x)*float64(limit)/sum)))
		g = gcd(g, out[i])
	}
	var total int64
	for i := range out {
		out[i] /= g
		total += out[i]
	}
	return out, total
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// smoothOrder is nginx's smooth weighted round robin: every turn each
// server's current value grows by its weight, the largest (first on ties)
// is chosen and loses the total.
func smoothOrder(w []int64, sum int64) []uint32 {
	order := make([]uint32, sum)
	cur := make([]int64, len(w))
	for t := range order {
		best := 0
		for i, x := range w {
			cur[i] += x
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		order[t] = uint32(best)
	}
	return order
}

// deadlineOrder orders turns by earliest virtual deadline: the k-th turn
// (from 0) of server i is due at (2k+1)/(2·w[i]); ties go to the lower
// index. It is O(sum · log n), for schedules too large for smoothOrder.
func deadlineOrder(w []int64, sum int64) []uint32 {
	type slot struct {
		i    int   // server index
		k    int64 // turns taken
		w    int64
		next int64 // 2k+1
	}
	// less compares deadlines (2k+1)/w without division.
	less := func(a, b slot) bool {
		l, r := a.next*b.w, b.next*a.w
		return l < r || (l == r && a.i < b.i)
	}
	h := make([]slot, len(w))
	for i, x := range w {
		h[i] = slot{i: i, w: x, next: 1}
	}
	down := func(j int) {
		for {
			c := 2*j + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(h[c+1], h[c]) {
				c++
			}
			if !less(h[c], h[j]) {
				return
			}
			h[j], h[c] = h[c], h[j]
			j = c
		}
	}
	for j := len(h)/2 - 1; j >= 0; j-- {
		down(j)
	}
	order := make([]uint32, sum)
	for t := range order {
		top := &h[0]
		order[t] = uint32(top.i)
		top.k++
		top.next = 2*top.k + 1
		down(0)
	}
	return order
}
