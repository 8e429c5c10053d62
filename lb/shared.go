package lb

import (
	"context"
	"net/netip"
	"time"
)

// ClientRater decides the per-client rate of a [Limits] in place of its
// local token buckets, so that a limit can hold across several load
// balancers: an implementation keeps the count in a store they share
// (package github.com/lbkit/lbkit/lb/redisrate keeps it in Redis).
//
// Allow reports whether the client key (its address, masked to
// ClientIPv6Prefix) may make one more request (L7) or connection (L4)
// now. It is called on the data path, concurrently: it must answer within
// a bounded time whatever its store does, and decide locally when the
// store does not answer. retry, when the answer is no, is the wait before
// a request could pass (0 when unknown); it becomes the 429's Retry-After.
// ctx is the request's or the accept path's context.
type ClientRater interface {
	Allow(ctx context.Context, key netip.Addr) (ok bool, retry time.Duration)
}

// SharedStats counts how a component whose state is shared between load
// balancers through an outside store (a Redis stick table, a fleet-wide
// rate limit) used that store. The exporter in lb/metrics reads it from
// any value with a SharedStats method.
type SharedStats struct {
	// Requests counts the requests sent to the store (lookups, writes,
	// counter updates).
	Requests uint64
	// Fallbacks counts decisions taken locally because the store failed,
	// was slow or was known to be down.
	Fallbacks uint64
	// Errors counts failed or dropped writes to the store.
	Errors uint64
}
