package sticky

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/ipkey"
	"github.com/lbkit/lbkit/lb"
)

// Defaults of SourceIP's zero-valued fields.
const (
	DefaultMaxEntries = 1 << 16
	DefaultTTL        = 30 * time.Minute
)

// maxShards is the number of independently locked parts of a large table.
const maxShards = 64

// SourceIP is source-address stickiness, for L4 and L7 alike: an
// lb.Affinity that pins each client address to a server in a bounded table.
//
// The key is PickInfo.Client's address: the socket peer, or the address a
// trusted PROXY protocol header carried when the frontend is configured to
// receive one. IPv6 (and optionally IPv4) addresses can be reduced to a
// prefix first, so that one host's privacy addresses share a pin.
//
// The table holds at most MaxEntries clients; an entry expires TTL after
// its last use (each use refreshes it) and the least recently used entry is
// evicted when the table is full. It is split into up to 64 shards, each
// with its own mutex and LRU list, so that parallel picks rarely contend;
// the bound is exact, the LRU order is per shard. A lookup or a pin of a
// known client does not allocate.
//
// A client whose pinned server is not pickable (down, draining, removed) is
// balanced normally and re-pinned; OnMove and MovedHeader report it. A
// pinned server at its MaxConns is waited for (the queue rule of lb.Pool).
//
// The table is per instance: several load balancers behind DNS or ECMP pin
// the same client independently, and agree only by chance. When clients
// must land on the same server whichever instance they reach, share the
// table through Redis (sticky/redistable.Table) or use the stateless
// balancer.Hash{Key: balancer.SourceIP} instead (consistent hashing: the
// same servers give the same answer everywhere, and a server change moves
// only its share of clients).
//
// Configure the exported fields before first use; the methods are safe for
// concurrent use.
type SourceIP struct {
	// MaxEntries bounds the number of clients in the table. Zero means
	// DefaultMaxEntries.
	MaxEntries int

	// TTL is how long an entry lives after its last use. Zero means
	// DefaultTTL.
	TTL time.Duration

	// IPv6Prefix, between 1 and 127, keys IPv6 clients by that many leading
	// bits (64: one pin per /64 network). Zero or 128 means the whole
	// address.
	IPv6Prefix int

	// IPv4Prefix, between 1 and 31, keys IPv4 clients by that many leading
	// bits (24: one pin per /24). Zero or 32 means the whole address.
	IPv4Prefix int

	// MovedHeader, when set and the Pool is served by lb.ReverseProxy,
	// names a response header set to "1" on the response to a client whose
	// pinned server could no longer be used.
	MovedHeader string

	// OnMove, when set, is called when a client is re-pinned from server
	// from to server to, on the picking goroutine after the table is
	// unlocked. It must not block.
	OnMove func(info lb.PickInfo, from, to string)

	once   sync.Once
	shards []ipShard
	mask   uint64 // len(shards)-1
	seed   uint64
	ttl    time.Duration
}

// ErrTableConfig means a SourceIP field is out of range.
var ErrTableConfig = errors.New("sticky: invalid source-IP table setting")

// Validate reports fields out of range: a negative MaxEntries or TTL, or a
// prefix length beyond the address size (which would otherwise be ignored).
func (t *SourceIP) Validate() error {
	switch {
	case t.MaxEntries < 0:
		return fmt.Errorf("%w: MaxEntries %d", ErrTableConfig, t.MaxEntries)
	case t.TTL < 0:
		return fmt.Errorf("%w: TTL %s", ErrTableConfig, t.TTL)
	case t.IPv6Prefix < 0 || t.IPv6Prefix > 128:
		return fmt.Errorf("%w: IPv6Prefix %d", ErrTableConfig, t.IPv6Prefix)
	case t.IPv4Prefix < 0 || t.IPv4Prefix > 32:
		return fmt.Errorf("%w: IPv4Prefix %d", ErrTableConfig, t.IPv4Prefix)
	}
	return nil
}

type ipKey [16]byte

type ipShard struct {
	mu      sync.Mutex
	m       map[ipKey]*ipEntry
	lru     list.List // of *ipEntry, the most recently used first
	max     int
	expired uint64 // entries dropped on expiry
	evicted uint64 // entries dropped to make room
	_       [64]byte
}

type ipEntry struct {
	key     ipKey
	server  string
	moved   string // the previous server, until the next response or hit
	expires time.Time
	elem    *list.Element // in the shard's lru
}

func (t *SourceIP) init() {
	t.once.Do(func() {
		max := t.MaxEntries
		if max <= 0 {
			max = DefaultMaxEntries
		}
		// Shards of at least 256 entries, a power of two of them.
		n := min(maxShards, max/256)
		if n < 1 {
			n = 1
		}
		n = 1 << (bits.Len(uint(n)) - 1)
		t.shards = make([]ipShard, n)
		for i := range t.shards {
			sh := &t.shards[i]
			sh.m = make(map[ipKey]*ipEntry)
			sh.max = max / n
			if i < max%n {
				sh.max++
			}
		}
		t.mask = uint64(n - 1)
		t.seed = rand.Uint64()
		t.ttl = t.TTL
		if t.ttl <= 0 {
			t.ttl = DefaultTTL
		}
	})
}

// key returns the table key of a, masked to the configured prefix.
func (t *SourceIP) key(a netip.Addr) (ipKey, bool) {
	return ipkey.Of(a, t.IPv4Prefix, t.IPv6Prefix)
}

func (t *SourceIP) shard(k ipKey) *ipShard {
	x := mix64(binary.LittleEndian.Uint64(k[:8]) ^ t.seed)
	x = mix64(x ^ binary.LittleEndian.Uint64(k[8:]))
	return &t.shards[x&t.mask]
}

// mix64 is the finalizer of SplitMix64: every output bit depends on every
// input bit.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ z>>31
}

// Lookup returns the pickable server the client is pinned to and refreshes
// the entry's TTL. Part of lb.Affinity.
func (t *SourceIP) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	srv, pin := t.LookupPin(s, info)
	return srv, pin == lb.PinHonoured
}

// LookupPin is Lookup that also reports a client pinned to a server that is
// not pickable (down, draining, removed, or avoided after a failure) as
// lb.PinMoved, so that access logs show the move; an expired entry is no
// pin. Part of lb.PinReporter.
func (t *SourceIP) LookupPin(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, lb.PinState) {
	k, ok := t.key(info.Client.Addr())
	if !ok {
		return nil, lb.PinNone
	}
	t.init()
	sh := t.shard(k)
	now := time.Now()
	sh.mu.Lock()
	e := sh.m[k]
	if e == nil {
		sh.mu.Unlock()
		return nil, lb.PinNone
	}
	if !now.Before(e.expires) {
		sh.remove(e)
		sh.expired++
		sh.mu.Unlock()
		return nil, lb.PinNone
	}
	name := e.server
	var srv *lb.Server
	for _, sv := range s.Servers {
		if sv.Name == name {
			srv = sv
			break
		}
	}
	if srv != nil {
		e.expires = now.Add(t.ttl)
		e.moved = ""
		sh.toFront(e)
	}
	sh.mu.Unlock()
	if srv == nil {
		return nil, lb.PinMoved
	}
	return srv, lb.PinHonoured
}

// Pin records that the client now goes to s. Part of lb.Affinity.
func (t *SourceIP) Pin(info lb.PickInfo, s *lb.Server) {
	k, ok := t.key(info.Client.Addr())
	if !ok {
		return
	}
	t.init()
	sh := t.shard(k)
	now := time.Now()
	from := ""
	sh.mu.Lock()
	e := sh.m[k]
	if e != nil && !now.Before(e.expires) {
		sh.remove(e)
		sh.expired++
		e = nil
	}
	if e != nil {
		if e.server != s.Name {
			from, e.moved = e.server, e.server
			e.server = s.Name
		}
		sh.toFront(e)
	} else {
		e = sh.insert(k, now)
		e.server = s.Name
	}
	e.expires = now.Add(t.ttl)
	sh.mu.Unlock()
	if from != "" && t.OnMove != nil {
		t.OnMove(info, from, s.Name)
	}
}

// PinResponse sets MovedHeader on the response to a client that was just
// re-pinned. Part of lb.ResponseAffinity, called by lb.ReverseProxy.
func (t *SourceIP) PinResponse(h http.Header, info lb.PickInfo, s *lb.Server, sticky bool) {
	if sticky || t.MovedHeader == "" {
		return
	}
	k, ok := t.key(info.Client.Addr())
	if !ok {
		return
	}
	t.init()
	sh := t.shard(k)
	moved := false
	sh.mu.Lock()
	if e := sh.m[k]; e != nil && e.moved != "" && e.server == s.Name {
		e.moved, moved = "", true
	}
	sh.mu.Unlock()
	if moved {
		h.Set(t.MovedHeader, "1")
	}
}

// TableStats counts the entries of a SourceIP table.
type TableStats struct {
	// Entries is the number of clients in the table, expired entries not
	// yet dropped included.
	Entries int
	// Expired counts entries dropped because their TTL passed; Evicted
	// those dropped to make room for a new client.
	Expired, Evicted uint64
}

// Stats returns the table's counters.
func (t *SourceIP) Stats() TableStats {
	t.init()
	var st TableStats
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		st.Entries += len(sh.m)
		st.Expired += sh.expired
		st.Evicted += sh.evicted
		sh.mu.Unlock()
	}
	return st
}

// Forget removes the client's entry, if any.
func (t *SourceIP) Forget(client netip.Addr) {
	k, ok := t.key(client)
	if !ok {
		return
	}
	t.init()
	sh := t.shard(k)
	sh.mu.Lock()
	if e := sh.m[k]; e != nil {
		sh.remove(e)
	}
	sh.mu.Unlock()
}

// insert adds an entry for k at the front, making room first: expired
// entries at the tail go, then the least recently used one, whose entry
// and list element are reused.
func (sh *ipShard) insert(k ipKey, now time.Time) *ipEntry {
	for el := sh.lru.Back(); el != nil && !now.Before(el.Value.(*ipEntry).expires); el = sh.lru.Back() {
		sh.remove(el.Value.(*ipEntry))
		sh.expired++
	}
	var e *ipEntry
	if el := sh.lru.Back(); len(sh.m) >= sh.max && el != nil {
		e = el.Value.(*ipEntry)
		delete(sh.m, e.key)
		sh.evicted++
		*e = ipEntry{elem: el}
		sh.lru.MoveToFront(el)
	} else {
		e = new(ipEntry)
		e.elem = sh.lru.PushFront(e)
	}
	e.key = k
	sh.m[k] = e
	return e
}

func (sh *ipShard) remove(e *ipEntry) {
	delete(sh.m, e.key)
	sh.lru.Remove(e.elem)
}

func (sh *ipShard) toFront(e *ipEntry) { sh.lru.MoveToFront(e.elem) }

var (
	_ lb.Affinity         = (*SourceIP)(nil)
	_ lb.ResponseAffinity = (*SourceIP)(nil)
	_ lb.PinReporter      = (*SourceIP)(nil)
)
