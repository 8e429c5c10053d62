package redisrate

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/lbkit/lbkit/internal/redisutil"
	"github.com/lbkit/lbkit/lb"
)

// Defaults of Limiter's zero-valued fields.
const (
	// DefaultTimeout bounds one decision's round trip to Redis.
	DefaultTimeout = 50 * time.Millisecond
	// DefaultRetryAfter is how long Redis is left alone after it failed.
	DefaultRetryAfter = time.Second
	// DefaultPrefix starts the Redis keys of a Limiter.
	DefaultPrefix = "lbkit:rate:"
	// DefaultMaxClients bounds the local table of a Limiter.
	DefaultMaxClients = 100_000
)

// ErrConfig means a Limiter field is missing or out of range.
var ErrConfig = errors.New("redisrate: invalid setting")

// gcraScript is the generic cell rate algorithm on Redis's clock: KEYS[1]
// holds the client's theoretical arrival time in microseconds, ARGV[1] is
// the interval between requests at the rate (µs), ARGV[2] the burst. It
// returns {1, 0} and advances the time when the request passes, {0, µs
// until one would pass} otherwise. The key expires when the client's
// bucket is full again.
var gcraScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local limit = interval * tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + interval
if new - now > limit then
	return {0, math.ceil(new - now - limit)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return {1, 0}
`)

// Limiter is a per-client rate limit that holds across a fleet of load
// balancers: an lb.ClientRater that counts every client's requests (or
// connections) in Redis, for lb.Limits.ClientRater. See the package
// documentation for the bounds it keeps.
//
// Client and Rate must be set; configure the fields before first use.
// Allow is safe for concurrent use. The Limiter does not close Client.
type Limiter struct {
	// Client is the Redis client, required, with ContextTimeoutEnabled
	// set so that it honours Timeout. Validate reports a client without
	// it; one used anyway is never asked (the local share decides alone,
	// logged once at Error), as a decision could otherwise wait for
	// go-redis's ReadTimeout.
	Client redis.UniversalClient

	// Prefix starts every key; the client's address follows. Instances
	// that share a limit share its Prefix. Empty means DefaultPrefix.
	Prefix string

	// Rate is the requests (or connections) per second one client may
	// make, over the whole fleet. Required.
	Rate float64

	// Burst is how many it may make at once after being quiet. Zero means
	// Rate rounded up, at least 1.
	Burst int

	// Instances is the number of load balancers that share the limit:
	// while Redis is away each admits Rate/Instances (and
	// Burst/Instances, rounded up) on its own. Zero means 1: each
	// instance then admits the whole rate alone.
	Instances int

	// Timeout bounds a decision's round trip to Redis; beyond it the
	// local share decides. Zero means DefaultTimeout.
	Timeout time.Duration

	// RetryAfter is how long the local share decides alone, without
	// asking Redis, after a Redis error or timeout. Zero means
	// DefaultRetryAfter.
	RetryAfter time.Duration

	// MaxClients bounds the local table (refusals Redis made, and the
	// local share's buckets). The table is cut into 64 shards, each with
	// its own lock and an equal part of MaxClients (at least 1), and the
	// least recently seen client of a full shard goes first. Zero means
	// DefaultMaxClients.
	MaxClients int

	// Logger receives Redis failures (at most one per RetryAfter) at
	// Warn. Nil means slog.Default().
	Logger *slog.Logger

	once     sync.Once
	interval string // µs between requests at Rate
	burst    string
	timeout  time.Duration
	retry    time.Duration
	prefix   string
	local    rate.Limit
	lburst   int
	max      int

	seed   maphash.Seed
	shards [numShards]shard

	backoff redisutil.Backoff // Redis failed: left alone until then
	// noDeadlines: Client ignores context deadlines (no
	// ContextTimeoutEnabled), so Redis is never asked.
	noDeadlines bool

	requests, allowed, refused, blocked, fallbacks, errs atomic.Uint64
}

// numShards is how many parts the local table is cut into, each with its
// own lock and recency list, so that concurrent decisions for different
// clients rarely wait for each other.
const numShards = 64

// shard is one part of the local table: its clients, bounded by max.
type shard struct {
	mu  sync.Mutex
	m   map[netip.Addr]*client
	lru list.List // of *client, the most recently seen first
	max int
	_   [64]byte // keeps neighbouring shards' locks off one cache line
}

// client is the local state of one client.
type client struct {
	key     netip.Addr
	until   time.Time     // Redis refused: refuse locally until then
	limiter *rate.Limiter // the local share, used while Redis is away
	elem    *list.Element
}

// Validate reports a missing Client, a Client that ignores context
// deadlines, and fields out of range.
func (l *Limiter) Validate() error {
	switch {
	case l.Client == nil:
		return fmt.Errorf("%w: no Client", ErrConfig)
	case !redisutil.ContextTimeouts(l.Client):
		return fmt.Errorf("%w: the Client needs ContextTimeoutEnabled, or a decision may wait for its ReadTimeout instead of Timeout", ErrConfig)
	case !(l.Rate > 0) || math.IsInf(l.Rate, 1):
		return fmt.Errorf("%w: Rate %v", ErrConfig, l.Rate)
	case l.Burst < 0 || l.Instances < 0 || l.Timeout < 0 || l.RetryAfter < 0 || l.MaxClients < 0:
		return fmt.Errorf("%w: negative size or duration", ErrConfig)
	}
	return nil
}

func (l *Limiter) init() {
	l.once.Do(func() {
		burst := l.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(l.Rate)))
		}
		l.interval = strconv.FormatFloat(1e6/l.Rate, 'f', 3, 64)
		l.burst = strconv.Itoa(burst)
		n := max(1, l.Instances)
		l.local = rate.Limit(l.Rate / float64(n))
		l.lburst = max(1, (burst+n-1)/n)
		l.timeout = l.Timeout
		if l.timeout <= 0 {
			l.timeout = DefaultTimeout
		}
		l.retry = l.RetryAfter
		if l.retry <= 0 {
			l.retry = DefaultRetryAfter
		}
		l.prefix = l.Prefix
		if l.prefix == "" {
			l.prefix = DefaultPrefix
		}
		l.max = l.MaxClients
		if l.max <= 0 {
			l.max = DefaultMaxClients
		}
		l.seed = maphash.MakeSeed()
		per := max(1, l.max/numShards)
		for i := range l.shards {
			l.shards[i].m = make(map[netip.Addr]*client)
			l.shards[i].max = per
		}
		if l.Client == nil || !redisutil.ContextTimeouts(l.Client) {
			// Fail closed to the local share rather than wait for
			// go-redis's socket timeouts on the data path.
			l.noDeadlines = true
			l.logger().LogAttrs(context.Background(), slog.LevelError,
				"redisrate: the Redis client lacks ContextTimeoutEnabled (or is nil); limiting locally only",
				slog.String("prefix", l.prefix))
		}
	})
}

// Allow decides one request (or connection) of the client key: in Redis,
// for at most Timeout, or by the local share when Redis fails or failed
// within RetryAfter. A client Redis refused is refused locally, without a
// round trip, until Redis said one would pass. Part of lb.ClientRater.
func (l *Limiter) Allow(ctx context.Context, key netip.Addr) (bool, time.Duration) {
	l.init()
	now := time.Now()
	sh := &l.shards[maphash.Comparable(l.seed, key)%numShards]
	sh.mu.Lock()
	c := sh.get(key)
	if now.Before(c.until) {
		retry := c.until.Sub(now)
		sh.mu.Unlock()
		l.blocked.Add(1)
		l.refused.Add(1)
		return false, retry
	}
	sh.mu.Unlock()

	if !l.noDeadlines && l.backoff.Available(now) {
		ok, retry, err := l.ask(ctx, key)
		if err == nil {
			if ok {
				l.allowed.Add(1)
				return true, 0
			}
			sh.mu.Lock()
			if c.elem != nil { // still in the table
				c.until = now.Add(retry)
			}
			sh.mu.Unlock()
			l.refused.Add(1)
			return false, retry
		}
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			// The request went away; it needs no answer.
			return false, 0
		}
		l.failed(err)
	}
	l.fallbacks.Add(1)
	sh.mu.Lock()
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(l.local, l.lburst)
	}
	lim := c.limiter
	sh.mu.Unlock()
	if lim.AllowN(now, 1) {
		l.allowed.Add(1)
		return true, 0
	}
	l.refused.Add(1)
	tokens := lim.TokensAt(now)
	return false, time.Duration((1 - tokens) / float64(l.local) * float64(time.Second))
}

// ask runs the script for key within Timeout.
func (l *Limiter) ask(ctx context.Context, key netip.Addr) (bool, time.Duration, error) {
	l.requests.Add(1)
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	v, err := gcraScript.Run(ctx, l.Client, []string{l.prefix + key.String()}, l.interval, l.burst).Int64Slice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("redisrate: unexpected reply %v", v)
	}
	if err != nil {
		l.errs.Add(1)
		return false, 0, fmt.Errorf("redisrate: %w", err)
	}
	return v[0] == 1, time.Duration(v[1]) * time.Microsecond, nil
}

// get returns the local entry of key, added if needed, as the most
// recently seen of its shard; sh.mu is held.
func (sh *shard) get(key netip.Addr) *client {
	if c := sh.m[key]; c != nil {
		sh.lru.MoveToFront(c.elem)
		return c
	}
	if len(sh.m) >= sh.max {
		old := sh.lru.Back().Value.(*client)
		sh.lru.Remove(old.elem)
		old.elem = nil
		delete(sh.m, old.key)
	}
	c := &client{key: key}
	c.elem = sh.lru.PushFront(c)
	sh.m[key] = c
	return c
}

// failed leaves Redis alone for RetryAfter, and logs err once for it.
func (l *Limiter) failed(err error) {
	if l.backoff.Failed(l.retry) {
		l.logger().LogAttrs(context.Background(), slog.LevelWarn, "redisrate: Redis unavailable; limiting locally",
			slog.String("prefix", l.prefix), slog.Duration("retry_after", l.retry), slog.Any("error", err))
	}
}

func (l *Limiter) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// Stats counts a Limiter's decisions.
type Stats struct {
	// Allowed and Refused count the decisions.
	Allowed, Refused uint64
	// Requests counts the decisions sent to Redis; Errors those that
	// failed or timed out.
	Requests, Errors uint64
	// Blocked counts refusals made locally, without a round trip, for a
	// client Redis had refused until then.
	Blocked uint64
	// Fallbacks counts decisions the local share made because Redis
	// failed, timed out or had failed within RetryAfter.
	Fallbacks uint64
	// Clients is the number of clients in the local table.
	Clients int
}

// Stats returns the limiter's counters.
func (l *Limiter) Stats() Stats {
	l.init()
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return Stats{
		Allowed: l.allowed.Load(), Refused: l.refused.Load(),
		Requests: l.requests.Load(), Errors: l.errs.Load(),
		Blocked: l.blocked.Load(), Fallbacks: l.fallbacks.Load(), Clients: n,
	}
}

// SharedStats returns the counters lb/metrics exports for state shared
// through Redis.
func (l *Limiter) SharedStats() lb.SharedStats {
	st := l.Stats()
	return lb.SharedStats{Requests: st.Requests, Fallbacks: st.Fallbacks, Errors: st.Errors}
}

var _ lb.ClientRater = (*Limiter)(nil)
