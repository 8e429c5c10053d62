package balancer

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// Hash sends picks with the same key to the same server: consistent hashing
// over a Key (the client's IP address by default, or a header, a cookie, the
// URI, the SNI), with an optional bound on load.
//
// # Algorithm
//
// Hash uses Maglev hashing (Eisenbud et al., NSDI 2016): Prepare fills a
// lookup table of prime size M (65537 up to 655 servers, the first prime
// above 100 × servers beyond) from a per-server permutation of the slots,
// each server taking turns in proportion to its weight; a pick is one table
// read, O(1) whatever the number of servers. Shares follow the weights to
// within about n/M. The table depends only on the set of server names and
// weights, not on their configuration order.
//
// Maglev alone moves a few percent of the keys of surviving servers when the
// set changes. Hash avoids that for the common case of servers going down
// and coming back, or being removed: a table is kept while every pickable
// server is in it with the same weight, and slots of servers that are absent
// from the snapshot continue to the next slots of the table. So a server
// leaving moves only its own keys (spread over the others by weight), every
// other key stays, and the server coming back gets exactly its keys back. A
// new table is built when a server joins or changes weight (some keys of
// other servers then move, as with any Maglev rebuild) and when more
// servers are absent than present (so that skipping stays short). The
// snapshots a Pool derives for one pick (without the servers a retry
// avoids, or without full servers) reuse the table as well: preparing them
// is O(n), and the keys of the other servers stay in place.
//
// Because Hash remembers its last table, use one Hash per Pool: sharing one
// between Pools with different servers stays correct but rebuilds the table
// on every change and loses the stability described above.
//
// # Picks without a key
//
// A pick whose Key reports no key (an L4 connection for a header key, a
// request without the cookie) has no affinity to keep: it takes the next
// slot of the table from a rotating counter, which spreads such picks over
// the servers in proportion to their weights, like a weighted round robin.
//
// # Bounded load
//
// With BoundedLoad c ≥ 1, a server is skipped while its active connections
// or requests would exceed c × (total active + 1) × its share of the
// weights, rounded up ("consistent hashing with bounded loads", Mirrokni et
// al.). A skipped pick continues along the slots of the table from the
// key's slot, a sequence that is deterministic for the key, so overflowing
// keys of a hot server spread over the others and return home when the
// load drops. The total is the Pool's count of leases in flight
// (lb.Snapshot.Active, one atomic load, no sum over the servers): it
// includes servers that stopped being pickable (draining, down) until
// their leases end, which loosens the bound by their share meanwhile. While
// leases start concurrently, that total can briefly lag the servers' own
// counts so that every server looks over the limit; a pick then goes to the
// least loaded server relative to its weight rather than to the key's.
//
// # Concurrency
//
// Pick is lock-free and does not allocate; Prepare serialises on a mutex.
// The zero value (source IP, no bound) is ready to use. Configure the fields
// before first use; a Hash must not be copied after first use.
type Hash struct {
	// Key extracts the hashing key of each pick. Nil means SourceIP.
	Key Key

	// BoundedLoad caps the load of each server at BoundedLoad × (total
	// active + 1) × its weight share, rounded up; 1.25 is a common choice.
	// Zero or negative means no cap; values between 0 and 1 mean 1.
	BoundedLoad float64

	_    [64]byte      // keeps the counter off the cache line of the fields
	next atomic.Uint64 // rotation for picks without a key
	_    [56]byte

	mu      sync.Mutex // serialises Prepare
	table   *maglev    // the last table built
	version uint64     // Version of the last snapshot prepared
	seen    bool
}

// maglev is an immutable Maglev lookup table over a universe of servers.
type maglev struct {
	names   []string // sorted
	weights []int
	index   map[string]int
	m       uint64
	t16     []uint16 // table, when fewer than 65535 servers
	t32     []uint32 // otherwise
}

func (t *maglev) at(pos uint64) int {
	if t.t16 != nil {
		return int(t.t16[pos])
	}
	return int(t.t32[pos])
}

// hashState is what Prepare returns: the table and where its servers sit in
// the snapshot.
type hashState struct {
	t      *maglev
	slot   []int32 // universe index → snapshot index, -1 when absent
	weight float64 // sum of the snapshot's weights
	probes int     // slots to try before the fallback scan
}

// Pick returns the server of the pick's key.
func (h *Hash) Pick(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, error) {
	key := h.Key
	if key == nil {
		key = SourceIP
	}
	hv, ok := key(info)
	if !ok {
		hv = h.next.Add(1) - 1 // consecutive slots
	}
	st, prepared := s.Prepared().(*hashState)
	if !prepared {
		// Not a snapshot of a Pool: plain modulo, no consistency.
		return s.Servers[hv%uint64(len(s.Servers))], nil
	}
	return st.pick(s, hv, h.BoundedLoad), nil
}

func (st *hashState) pick(s *lb.Snapshot, hv uint64, bound float64) *lb.Server {
	if bound > 0 && bound < 1 {
		bound = 1
	}
	t := st.t
	pos := hv % t.m
	limit := -1.0 // allowed load per unit of weight, computed on first need
	for range st.probes {
		if j := st.slot[t.at(pos)]; j >= 0 {
			sv := s.Servers[j]
			if bound <= 0 {
				return sv
			}
			if limit < 0 {
				limit = st.limit(s, bound)
			}
			if underLimit(sv, limit) {
				return sv
			}
		}
		if pos++; pos == t.m {
			pos = 0
		}
	}
	// Long runs of absent or loaded servers: scan the snapshot from a
	// position given by the key. Some server is under the limit when the
	// counts are settled; while leases start concurrently, the Pool's
	// total can lag the servers' own counts so that none is, and the pick
	// then goes to the least loaded relative to weight.
	n := len(s.Servers)
	start := int(hv % uint64(n))
	if bound <= 0 {
		return s.Servers[start]
	}
	if limit < 0 {
		limit = st.limit(s, bound)
	}
	best := s.Servers[start]
	ba, bw := best.Active(), int64(best.EffectiveWeight())
	for k := range n {
		sv := s.Servers[(start+k)%n]
		if underLimit(sv, limit) {
			return sv
		}
		if ca, cw := sv.Active(), int64(sv.EffectiveWeight()); ca*bw < ba*cw {
			best, ba, bw = sv, ca, cw
		}
	}
	return best
}

// limit returns the bounded load per unit of weight. The total is the
// Pool's (Snapshot.Active, one atomic load).
func (st *hashState) limit(s *lb.Snapshot, bound float64) float64 {
	return bound * float64(s.Active()+1) / st.weight
}

func underLimit(sv *lb.Server, limit float64) bool {
	return float64(sv.Active()) < math.Ceil(limit*float64(sv.EffectiveWeight()))
}

// Prepare returns the lookup state of s, reusing the current table when it
// covers s.
func (h *Hash) Prepare(s *lb.Snapshot) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Snapshots the Pool derives for one pick share their parent's
	// version: never prune the table for them.
	derived := h.seen && s.Version == h.version
	h.version, h.seen = s.Version, true

	t := h.table
	if t == nil || !t.covers(s) || (!derived && len(t.names)-len(s.Servers) > len(s.Servers)) {
		t = newMaglev(universe(t, s))
		h.table = t
	}
	st := &hashState{t: t, slot: make([]int32, len(t.names))}
	for i := range st.slot {
		st.slot[i] = -1
	}
	for j, sv := range s.Servers {
		st.slot[t.index[sv.Name]] = int32(j)
		st.weight += float64(sv.EffectiveWeight())
	}
	st.probes = int(min(t.m, uint64(64+8*len(t.names))))
	return st
}

// covers reports whether every server of s is in t with the same weight.
func (t *maglev) covers(s *lb.Snapshot) bool {
	for _, sv := range s.Servers {
		i, ok := t.index[sv.Name]
		if !ok || t.weights[i] != sv.EffectiveWeight() {
			return false
		}
	}
	return true
}

type member struct {
	name   string
	weight int
}

// universe returns the servers of s, plus those of the previous table that
// are absent from s as long as they are fewer than the present ones, sorted
// by name.
func universe(prev *maglev, s *lb.Snapshot) []member {
	out := make([]member, 0, len(s.Servers))
	in := make(map[string]bool, len(s.Servers))
	for _, sv := range s.Servers {
		if !in[sv.Name] {
			in[sv.Name] = true
			out = append(out, member{sv.Name, sv.EffectiveWeight()})
		}
	}
	if prev != nil {
		present := len(out)
		for i, name := range prev.names {
			if !in[name] {
				out = append(out, member{name, prev.weights[i]})
			}
		}
		if len(out)-present > present {
			out = out[:present]
		}
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.name, b.name) })
	return out
}

// newMaglev fills a Maglev table for the members.
func newMaglev(ms []member) *maglev {
	n := len(ms)
	t := &maglev{
		names:   make([]string, n),
		weights: make([]int, n),
		index:   make(map[string]int, n),
		m:       tableSize(n),
	}
	for i, mb := range ms {
		t.names[i], t.weights[i], t.index[mb.name] = mb.name, mb.weight, i
	}
	if n < 1<<16-1 { // 0xffff marks free slots while filling
		t.t16 = populate[uint16](ms, t.m)
	} else {
		t.t32 = populate[uint32](ms, t.m)
	}
	return t
}

// populate fills a table of m slots with member indexes. Each member walks
// its own permutation of the slots (an offset, then steps of skip, from two
// hashes of its name) and takes the next free slot when its turn comes; a
// member of weight w gets a turn in about w/max of the rounds.
func populate[T uint16 | uint32](ms []member, m uint64) []T {
	empty := ^T(0)
	n := len(ms)
	maxW := 1
	for _, mb := range ms {
		maxW = max(maxW, mb.weight)
	}
	cur := make([]uint64, n)
	skip := make([]uint64, n)
	share := make([]float64, n)
	count := make([]uint64, n)
	for i, mb := range ms {
		h := HashString(mb.name)
		cur[i] = h % m
		skip[i] = mix(h^0x9e3779b97f4a7c15)%(m-1) + 1
		share[i] = float64(mb.weight) / float64(maxW)
	}
	slots := make([]T, m)
	for i := range slots {
		slots[i] = empty
	}
	filled := uint64(0)
	for round := uint64(0); filled < m; round++ {
		for i := 0; i < n && filled < m; i++ {
			if float64(round)*share[i] < float64(count[i]) {
				continue
			}
			for slots[cur[i]] != empty {
				if cur[i] += skip[i]; cur[i] >= m {
					cur[i] -= m
				}
			}
			slots[cur[i]] = T(i)
			count[i]++
			filled++
		}
	}
	return slots
}

// tableSize returns the Maglev table size for n servers: a prime at least
// 100 times n, and at least 65537.
func tableSize(n int) uint64 {
	m := uint64(65537)
	if want := uint64(n) * 100; want > m {
		m = want | 1
		for !isPrime(m) {
			m += 2
		}
	}
	return m
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
