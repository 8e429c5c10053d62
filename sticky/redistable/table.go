package redistable

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/internal/ipkey"
	"github.com/lbkit/lbkit/internal/redisutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// Defaults of Table's zero-valued fields.
const (
	// DefaultTimeout bounds a lookup in Redis on the data path.
	DefaultTimeout = 50 * time.Millisecond
	// DefaultQueueSize is the number of writes waiting for Redis.
	DefaultQueueSize = 1024
	// DefaultRetryAfter is how long Redis is left alone after it failed.
	DefaultRetryAfter = time.Second
	// DefaultPrefix starts the Redis keys of a table.
	DefaultPrefix = "lbkit:sticky:"
	// WriteTimeout bounds one batch of writes to Redis.
	WriteTimeout = time.Second
	// maxBatch is the most writes sent in one pipeline.
	maxBatch = 64
	// numShards is the number of locked parts of the local cache.
	numShards = 16
)

// ErrConfig means a Table field is missing or out of range.
var ErrConfig = errors.New("redistable: invalid setting")

// claimScript binds a client to a server unless another binding holds:
// KEYS[1] is the client, ARGV[1] the server's address, ARGV[2] the
// address it replaces ("" for none) and ARGV[3] the expiry in
// milliseconds. The key is (re)set when it is absent (SET NX: the first
// instance's choice wins), already ARGV[1] (a refresh of its expiry) or
// ARGV[2] (a move away from a server that cannot be used). It returns the
// binding that holds afterwards, which is the read-back.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] or (ARGV[2] ~= '' and cur == ARGV[2]) then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
	return ARGV[1]
end
return cur
`)

// Table is source-address stickiness shared by several load balancers
// through Redis: an lb.Affinity, like sticky.SourceIP, whose bindings are
// the same on every instance that uses the same Redis and Prefix. A server
// is named in Redis by its Addr, which every instance configures the same
// way, never by its Name or its place in a list.
//
// A local cache, bounded and with the table's TTL, answers the clients it
// knows at once, without a round trip. A client it does not know is looked
// up in Redis, for at most Timeout; when Redis fails, is slow or was found
// down in the last RetryAfter, the lookup counts as a fallback and the
// client is balanced by the Pool as it would be without the table (the
// local decision). New bindings go to Redis in the background through a
// bounded queue drained by Run: a script sets the key only if it is
// absent (SET NX with the TTL as its expiry), so the first instance's
// choice wins, and returns the binding that holds, which replaces a
// different local one. Two instances that meet a new client at the same
// moment may send its first connections to different servers; from the
// read-back on, both use the first writer's choice. Local hits refresh the
// expiry in Redis at most every TTL/4, through the same queue.
//
// Client, at least, must be set; configure the fields before first use and
// start Run. The methods are safe for concurrent use. The Table does not
// close Client, which may be shared (go-redis reconnects by itself).
type Table struct {
	// Client is the Redis client, required, with ContextTimeoutEnabled
	// set so that it honours the Table's deadlines. Its own timeouts and
	// retries apply inside those bounds. Validate reports a client
	// without it; one used anyway is never asked (the Table pins locally
	// only, logged once at Error), as a lookup could otherwise wait for
	// go-redis's ReadTimeout.
	Client redis.UniversalClient

	// Prefix starts every key; the client's address follows. Instances
	// that share a pool share its Prefix; pools differ by it. Empty means
	// DefaultPrefix.
	Prefix string

	// MaxEntries bounds the local cache. Zero means
	// sticky.DefaultMaxEntries.
	MaxEntries int

	// TTL is how long a binding lives after its last use, locally and in
	// Redis. Zero means sticky.DefaultTTL.
	TTL time.Duration

	// IPv4Prefix and IPv6Prefix key clients by that many leading bits, as
	// in sticky.SourceIP. Zero means the whole address.
	IPv4Prefix, IPv6Prefix int

	// Timeout bounds a lookup in Redis, on the data path. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// QueueSize bounds the writes waiting for Redis; beyond it writes are
	// dropped and counted (the binding stays local and is written again
	// on a later use). Zero means DefaultQueueSize.
	QueueSize int

	// RetryAfter is how long the Table answers locally, without asking
	// Redis, after a Redis error or timeout. Zero means DefaultRetryAfter.
	RetryAfter time.Duration

	// MovedHeader and OnMove are as in sticky.SourceIP: the response
	// header set on a client's response when its server could no longer
	// be used, and a hook called, without the table locked, when a client
	// is re-pinned here; from and to are server addresses. OnMove must
	// not block.
	MovedHeader string
	OnMove      func(info lb.PickInfo, from, to string)

	// Logger receives Redis failures (at most one per RetryAfter) at
	// Warn. Nil means slog.Default().
	Logger *slog.Logger

	once    sync.Once
	shards  [numShards]shard
	perMax  int
	seed    uint64
	ttl     time.Duration
	refresh time.Duration
	timeout time.Duration
	retry   time.Duration
	prefix  string
	queue   chan op

	backoff redisutil.Backoff // Redis failed: left alone until then
	// noDeadlines: Client ignores context deadlines (no
	// ContextTimeoutEnabled), so Redis is never asked.
	noDeadlines bool

	hits, lookups, found, fallbacks        atomic.Uint64
	writes, writeErrors, dropped, lostRace atomic.Uint64
}

type ipKey [16]byte

type shard struct {
	mu      sync.Mutex
	m       map[ipKey]*entry
	lru     list.List // of *entry, the most recently used first
	expired uint64
	evicted uint64
	_       [64]byte
}

type entry struct {
	key     ipKey
	addr    string // the server's address
	moved   string // the previous address, until the next response or hit
	expires time.Time
	synced  time.Time // when a write was last queued; zero: Redis needs one
	elem    *list.Element
}

// op is one write: bind key to addr, replacing old.
type op struct {
	key       ipKey
	addr, old string
}

// Validate reports a missing Client, a *redis.Client or
// *redis.ClusterClient without ContextTimeoutEnabled (go-redis then
// ignores the Table's deadlines and waits for its own socket timeouts),
// and fields out of range.
func (t *Table) Validate() error {
	switch {
	case t.Client == nil:
		return fmt.Errorf("%w: no Client", ErrConfig)
	case !redisutil.ContextTimeouts(t.Client):
		return fmt.Errorf("%w: the Client needs ContextTimeoutEnabled, or a lookup may wait for its ReadTimeout instead of Timeout", ErrConfig)
	case t.MaxEntries < 0 || t.TTL < 0 || t.Timeout < 0 || t.QueueSize < 0 || t.RetryAfter < 0:
		return fmt.Errorf("%w: negative size or duration", ErrConfig)
	case t.IPv6Prefix < 0 || t.IPv6Prefix > 128:
		return fmt.Errorf("%w: IPv6Prefix %d", ErrConfig, t.IPv6Prefix)
	case t.IPv4Prefix < 0 || t.IPv4Prefix > 32:
		return fmt.Errorf("%w: IPv4Prefix %d", ErrConfig, t.IPv4Prefix)
	}
	return nil
}

func (t *Table) init() {
	t.once.Do(func() {
		n := t.MaxEntries
		if n <= 0 {
			n = sticky.DefaultMaxEntries
		}
		t.perMax = max(1, n/numShards)
		for i := range t.shards {
			t.shards[i].m = make(map[ipKey]*entry)
		}
		t.seed = rand.Uint64()
		t.ttl = orDefault(t.TTL, sticky.DefaultTTL)
		t.refresh = t.ttl / 4
		t.timeout = orDefault(t.Timeout, DefaultTimeout)
		t.retry = orDefault(t.RetryAfter, DefaultRetryAfter)
		t.prefix = t.Prefix
		if t.prefix == "" {
			t.prefix = DefaultPrefix
		}
		q := t.QueueSize
		if q <= 0 {
			q = DefaultQueueSize
		}
		t.queue = make(chan op, q)
		if t.Client == nil || !redisutil.ContextTimeouts(t.Client) {
			// Fail closed to the local table rather than wait for
			// go-redis's socket timeouts on the data path.
			t.noDeadlines = true
			t.logger().LogAttrs(context.Background(), slog.LevelError,
				"redistable: the Redis client lacks ContextTimeoutEnabled (or is nil); pinning locally only",
				slog.String("prefix", t.prefix))
		}
	})
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// key returns the table key of a, masked to the configured prefix.
func (t *Table) key(a netip.Addr) (ipKey, bool) {
	return ipkey.Of(a, t.IPv4Prefix, t.IPv6Prefix)
}

// redisKey is the Redis key of k: Prefix and the client's address.
func (t *Table) redisKey(k ipKey) string {
	return t.prefix + netip.AddrFrom16(k).Unmap().String()
}

func (t *Table) shard(k ipKey) *shard {
	x := binary.LittleEndian.Uint64(k[:8]) ^ t.seed
	x = (x ^ x>>31) * 0x9e3779b97f4a7c15
	x ^= binary.LittleEndian.Uint64(k[8:])
	x = (x ^ x>>29) * 0xbf58476d1ce4e5b9
	return &t.shards[(x>>32)%numShards]
}

// byAddr returns the server of s at addr, nil if none is pickable.
func byAddr(s *lb.Snapshot, addr string) *lb.Server {
	for _, sv := range s.Servers {
		if sv.Addr == addr {
			return sv
		}
	}
	return nil
}

// Lookup returns the pickable server the client is pinned to. Part of
// lb.Affinity.
func (t *Table) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	srv, pin := t.LookupPin(s, info)
	return srv, pin == lb.PinHonoured
}

// LookupPin answers from the local cache when it knows the client and its
// server is pickable, without waiting; otherwise it asks Redis, for at
// most Timeout (a fallback, counted, when Redis fails: the client is then
// balanced). A client pinned to a server that is not pickable is
// lb.PinMoved. Part of lb.PinReporter.
func (t *Table) LookupPin(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, lb.PinState) {
	k, ok := t.key(info.Client.Addr())
	if !ok {
		return nil, lb.PinNone
	}
	t.init()
	sh := t.shard(k)
	now := time.Now()
	local := ""
	sh.mu.Lock()
	if e := sh.m[k]; e != nil {
		if !now.Before(e.expires) {
			sh.remove(e)
			sh.expired++
		} else if srv := byAddr(s, e.addr); srv != nil {
			e.expires = now.Add(t.ttl)
			e.moved = ""
			sh.lru.MoveToFront(e.elem)
			if now.Sub(e.synced) >= t.refresh && t.available(now) {
				if t.enqueue(op{key: k, addr: e.addr}) {
					e.synced = now
				}
			}
			sh.mu.Unlock()
			t.hits.Add(1)
			return srv, lb.PinHonoured
		} else {
			local = e.addr
		}
	}
	sh.mu.Unlock()

	remote, ok := t.get(k, now)
	if !ok || remote == "" {
		if local != "" {
			return nil, lb.PinMoved
		}
		return nil, lb.PinNone
	}
	srv := byAddr(s, remote)
	sh.mu.Lock()
	e := sh.m[k]
	if e == nil {
		e = t.insert(sh, k, now)
	}
	e.addr = remote
	e.expires = now.Add(t.ttl)
	if srv != nil {
		e.synced = now // Redis has it, with a fresh expiry below
		sh.lru.MoveToFront(e.elem)
	}
	sh.mu.Unlock()
	if srv == nil {
		return nil, lb.PinMoved
	}
	// Refresh Redis's expiry too, as a local hit would.
	t.enqueue(op{key: k, addr: remote})
	return srv, lb.PinHonoured
}

// get reads the binding of k in Redis: "" when there is none; false when
// Redis could not answer in time (a fallback).
func (t *Table) get(k ipKey, now time.Time) (string, bool) {
	if !t.available(now) {
		t.fallbacks.Add(1)
		return "", false
	}
	t.lookups.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	v, err := t.Client.Get(ctx, t.redisKey(k)).Result()
	cancel()
	switch {
	case err == redis.Nil:
		return "", true
	case err != nil:
		t.fallbacks.Add(1)
		t.failed(err)
		return "", false
	}
	t.found.Add(1)
	return v, true
}

// available reports whether Redis may be asked at now: never with a
// Client that ignores context deadlines, not for RetryAfter after a
// failure.
func (t *Table) available(now time.Time) bool {
	return !t.noDeadlines && t.backoff.Available(now)
}

// failed leaves Redis alone for RetryAfter, and logs err once for it.
func (t *Table) failed(err error) {
	if t.backoff.Failed(t.retry) {
		t.logger().LogAttrs(context.Background(), slog.LevelWarn,
			"redistable: Redis unavailable; pinning locally",
			slog.String("prefix", t.prefix), slog.Duration("retry_after", t.retry), slog.Any("error", err))
	}
}

func (t *Table) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.Default()
}

// enqueue queues a write without waiting; false (counted) when the queue
// is full.
func (t *Table) enqueue(o op) bool {
	select {
	case t.queue <- o:
		return true
	default:
		t.dropped.Add(1)
		return false
	}
}

// Pin records that the client now goes to s, locally at once and in Redis
// through the queue (when Redis is available). Part of lb.Affinity.
func (t *Table) Pin(info lb.PickInfo, s *lb.Server) {
	k, ok := t.key(info.Client.Addr())
	if !ok {
		return
	}
	t.init()
	sh := t.shard(k)
	now := time.Now()
	from, old := "", ""
	sh.mu.Lock()
	e := sh.m[k]
	if e != nil && !now.Before(e.expires) {
		sh.remove(e)
		sh.expired++
		e = nil
	}
	if e == nil {
		e = t.insert(sh, k, now)
	} else if e.addr != s.Addr {
		old, e.moved = e.addr, e.addr
		from = old
		sh.lru.MoveToFront(e.elem)
	}
	e.addr = s.Addr
	e.expires = now.Add(t.ttl)
	e.synced = time.Time{}
	if t.available(now) && t.enqueue(op{key: k, addr: s.Addr, old: old}) {
		e.synced = now
	}
	sh.mu.Unlock()
	if from != "" && t.OnMove != nil {
		t.OnMove(info, from, s.Addr)
	}
}

// PinResponse sets MovedHeader on the response to a client that was just
// re-pinned. Part of lb.ResponseAffinity.
func (t *Table) PinResponse(h http.Header, info lb.PickInfo, s *lb.Server, sticky bool) {
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
	if e := sh.m[k]; e != nil && e.moved != "" && e.addr == s.Addr {
		e.moved, moved = "", true
	}
	sh.mu.Unlock()
	if moved {
		h.Set(t.MovedHeader, "1")
	}
}

// insert adds an entry for k, making room first; sh.mu is held.
func (t *Table) insert(sh *shard, k ipKey, now time.Time) *entry {
	for el := sh.lru.Back(); el != nil && !now.Before(el.Value.(*entry).expires); el = sh.lru.Back() {
		sh.remove(el.Value.(*entry))
		sh.expired++
	}
	var e *entry
	if el := sh.lru.Back(); len(sh.m) >= t.perMax && el != nil {
		e = el.Value.(*entry)
		delete(sh.m, e.key)
		sh.evicted++
		*e = entry{elem: el}
		sh.lru.MoveToFront(el)
	} else {
		e = new(entry)
		e.elem = sh.lru.PushFront(e)
	}
	e.key = k
	sh.m[k] = e
	return e
}

func (sh *shard) remove(e *entry) {
	delete(sh.m, e.key)
	sh.lru.Remove(e.elem)
}

// Run writes the queued bindings to Redis until ctx is done, in pipelined
// batches bounded by WriteTimeout, and applies the bindings Redis returns
// (another instance's earlier choice replaces the local one). Start it
// once per Table, for as long as the Table serves; without it bindings
// stay local (lookups still read Redis). It returns ctx's error.
func (t *Table) Run(ctx context.Context) error {
	t.init()
	batch := make([]op, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case o := <-t.queue:
			batch = append(batch[:0], o)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-t.queue:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		t.write(ctx, batch)
	}
}

// write sends one batch and applies its answers.
func (t *Table) write(ctx context.Context, batch []op) {
	ctx, cancel := context.WithTimeout(ctx, WriteTimeout)
	defer cancel()
	cmds, err := t.exec(ctx, batch, false)
	if err != nil && isNoScript(err) {
		cmds, err = t.exec(ctx, batch, true)
	}
	for i, o := range batch {
		var v string
		var cerr error
		if cmds != nil {
			v, cerr = cmds[i].Text()
		} else {
			cerr = err
		}
		if cerr != nil {
			t.writeErrors.Add(1)
			t.unsynced(o)
			continue
		}
		t.writes.Add(1)
		if v != o.addr {
			t.lostRace.Add(1)
			t.adopt(o, v)
		}
	}
	if err != nil {
		t.failed(err)
	}
}

// exec runs the batch in one pipeline: EVALSHA, or EVAL with load set.
func (t *Table) exec(ctx context.Context, batch []op, load bool) ([]*redis.Cmd, error) {
	ms := t.ttl.Milliseconds()
	pipe := t.Client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, o := range batch {
		keys := []string{t.redisKey(o.key)}
		if load {
			cmds[i] = claimScript.Eval(ctx, pipe, keys, o.addr, o.old, ms)
		} else {
			cmds[i] = claimScript.EvalSha(ctx, pipe, keys, o.addr, o.old, ms)
		}
	}
	_, err := pipe.Exec(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	return cmds, err
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// unsynced marks the local binding of a failed write as needing one.
func (t *Table) unsynced(o op) {
	sh := t.shard(o.key)
	sh.mu.Lock()
	if e := sh.m[o.key]; e != nil && e.addr == o.addr {
		e.synced = time.Time{}
	}
	sh.mu.Unlock()
}

// adopt replaces the local binding o wrote by addr, the one Redis holds.
func (t *Table) adopt(o op, addr string) {
	sh := t.shard(o.key)
	sh.mu.Lock()
	if e := sh.m[o.key]; e != nil && e.addr == o.addr {
		e.addr = addr
		e.moved = ""
	}
	sh.mu.Unlock()
}

// Stats counts a Table's lookups, writes and fallbacks.
type Stats struct {
	// Entries is the number of clients in the local cache.
	Entries int
	// Hits counts lookups the local cache answered.
	Hits uint64
	// Lookups counts lookups sent to Redis; Found those it answered with
	// a binding.
	Lookups, Found uint64
	// Fallbacks counts lookups answered locally, without Redis's answer,
	// because Redis failed, timed out or had failed within RetryAfter.
	Fallbacks uint64
	// Writes counts bindings Redis acknowledged; WriteErrors those it did
	// not; Dropped those the full queue refused.
	Writes, WriteErrors, Dropped uint64
	// Conflicts counts writes whose read-back was another instance's
	// binding, which replaced the local one.
	Conflicts uint64
	// Expired and Evicted count local entries dropped for their TTL and
	// to make room.
	Expired, Evicted uint64
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	t.init()
	st := Stats{
		Hits: t.hits.Load(), Lookups: t.lookups.Load(), Found: t.found.Load(),
		Fallbacks: t.fallbacks.Load(), Writes: t.writes.Load(), WriteErrors: t.writeErrors.Load(),
		Dropped: t.dropped.Load(), Conflicts: t.lostRace.Load(),
	}
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

// SharedStats returns the counters lb/metrics exports for state shared
// through Redis: requests to Redis, fallbacks, errors.
func (t *Table) SharedStats() lb.SharedStats {
	st := t.Stats()
	return lb.SharedStats{
		Requests:  st.Lookups + st.Writes + st.WriteErrors,
		Fallbacks: st.Fallbacks,
		Errors:    st.WriteErrors + st.Dropped,
	}
}

var (
	_ lb.Affinity         = (*Table)(nil)
	_ lb.ResponseAffinity = (*Table)(nil)
	_ lb.PinReporter      = (*Table)(nil)
)
