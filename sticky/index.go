package sticky

import (
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// snapIndex caches a table built from one snapshot of a Pool, so that
// lookups cost a map access rather than work per server. A Pool derives
// smaller snapshots with the Version of their parent for one pick (after a
// failed attempt, or when servers are full); a table built from the parent
// serves them too, with a membership check.
type snapIndex[T any] struct {
	cur atomic.Pointer[indexed[T]]
}

type indexed[T any] struct {
	snap    *lb.Snapshot
	version uint64
	gen     uint64 // configuration generation (keys) the table was built with
	table   T
}

// get returns the table for s, building it with build when the cached one
// belongs to another snapshot version or generation. exact reports that the
// table was built from s itself, so no membership check is needed.
func (x *snapIndex[T]) get(s *lb.Snapshot, gen uint64, build func(s *lb.Snapshot) T) (table T, exact bool) {
	c := x.cur.Load()
	if c != nil && c.version == s.Version && c.gen == gen {
		if c.snap == s {
			return c.table, true
		}
		// A derived snapshot is a subset of its parent: the larger of
		// the two is the one to keep.
		if len(s.Servers) <= len(c.snap.Servers) {
			return c.table, false
		}
	}
	n := &indexed[T]{snap: s, version: s.Version, gen: gen, table: build(s)}
	for {
		if c != nil && (c.gen > gen || (c.gen == gen && c.version > s.Version)) {
			return n.table, true // an older snapshot: serve it without caching
		}
		if x.cur.CompareAndSwap(c, n) {
			return n.table, true
		}
		c = x.cur.Load()
	}
}

// member returns the server of s that is srv (same published value), or nil.
func member(s *lb.Snapshot, srv *lb.Server) *lb.Server {
	for _, sv := range s.Servers {
		if sv == srv {
			return sv
		}
	}
	return nil
}
