// Package redisutil holds what the Redis-backed packages (lb/redisrate,
// sticky/redistable) share: whether a go-redis client honours context
// deadlines, and the pause after Redis failed.
package redisutil

import (
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ContextTimeouts reports whether c honours the deadlines of contexts, as
// far as can be told: a *redis.Client or *redis.ClusterClient only with
// ContextTimeoutEnabled (without it go-redis waits for its own socket
// timeouts, 3 s by default); other clients are assumed to.
func ContextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Backoff leaves Redis alone for a while after it failed. The zero value
// is available; it is safe for concurrent use.
type Backoff struct {
	retryAt atomic.Int64 // unix nanoseconds before which Redis is not asked
}

// Available reports whether Redis may be asked at now.
func (b *Backoff) Available(now time.Time) bool {
	return now.UnixNano() >= b.retryAt.Load()
}

// Failed leaves Redis alone for d from now, and reports whether this
// failure began the pause (Redis was available before), the one worth
// logging.
func (b *Backoff) Failed(d time.Duration) bool {
	now := time.Now().UnixNano()
	prev := b.retryAt.Load()
	next := now + int64(d)
	return next > prev && b.retryAt.CompareAndSwap(prev, next) && prev <= now
}
