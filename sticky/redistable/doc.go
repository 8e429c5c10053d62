// Package redistable is a source-address stick table shared by several
// load balancers through Redis: a fleet behind one address (DNS, ECMP, a
// floating IP) sends a client to the same server whichever instance it
// reaches. It is sticky.SourceIP with its bindings kept in Redis.
//
// Only this package (and lb/redisrate) imports go-redis; packages sticky
// and lb do not.
//
// # Usage
//
//	rdb := redis.NewClient(&redis.Options{Addr: "10.0.0.5:6379", ContextTimeoutEnabled: true})
//	table := &redistable.Table{Client: rdb, Prefix: "lb:web:", TTL: time.Hour}
//	if err := table.Validate(); err != nil {
//		return err
//	}
//	go table.Run(ctx) // writes the bindings to Redis
//	pool := &lb.Pool{Name: "web", Affinity: table}
//
// Every instance configures the same servers with the same addresses
// (Server.Addr names a server in Redis: names and order may differ), the
// same Prefix and the same TTL.
//
// # The data path
//
// A client the local cache knows is answered at once: a map lookup under
// a shard's lock, no allocation, no round trip (BenchmarkHit). A client it
// does not know costs one GET, bounded by Timeout (50 ms by default); the
// answer is cached. When Redis fails or does not answer in time the client
// is balanced by the Pool's Balancer, the local decision, and the table
// answers locally, without asking Redis, for RetryAfter (one second by
// default); Stats().Fallbacks counts those lookups. go-redis reconnects by
// itself; nothing is to be done when Redis comes back.
//
// Writes leave the data path: Pin queues the binding (a bounded queue;
// when it is full the write is dropped and counted, and made again on a
// later use) and Run sends the queue in pipelined batches. Each write runs
// a script (EVALSHA) that sets the key only when it is absent, already
// this binding (a refresh of its expiry) or the binding being moved away
// from, with the TTL as its expiry: the first instance's choice wins.
// The script returns the binding that holds, and a different one replaces
// the local one (Stats().Conflicts). A local hit refreshes the expiry in
// Redis at most every TTL/4, by the same write, which also brings back
// another instance's move.
//
// # Consistency
//
// The table is eventually consistent, within bounds:
//
//   - two instances that meet a new client within one round trip to Redis
//     may each send its first connection to their own choice; from the
//     read-back on, the first writer's choice holds on both.
//   - a client re-pinned on one instance (its server went down there) is
//     moved in Redis at once; an instance that still has the old binding
//     cached and the server up keeps using it until its next refresh, at
//     most TTL/4 later.
//   - while Redis is down each instance pins on its own; the bindings made
//     meanwhile are written when Redis is back, on the client's next use
//     after RetryAfter, and a binding Redis already holds then wins.
//
// # Metrics
//
// Stats returns the counters (hits, lookups, fallbacks, writes, errors,
// conflicts); SharedStats returns the lb.SharedStats that
// lb/metrics.Collector.AddShared exports as <ns>_shared_requests_total,
// _shared_fallbacks_total and _shared_errors_total.
package redistable
