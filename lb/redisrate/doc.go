// Package redisrate is a per-client rate limit shared by a fleet of load
// balancers through Redis: an lb.ClientRater for lb.Limits.ClientRater, so
// that a client reaching several instances gets Rate per second in all,
// not Rate per instance.
//
// Only this package (and sticky/redistable) imports go-redis; package lb
// does not.
//
// # Usage
//
//	rdb := redis.NewClient(&redis.Options{Addr: "10.0.0.5:6379", ContextTimeoutEnabled: true})
//	rl := &redisrate.Limiter{Client: rdb, Prefix: "lb:web:", Rate: 50, Burst: 100, Instances: 3}
//	if err := rl.Validate(); err != nil {
//		return err
//	}
//	lim := &lb.Limits{ClientMaxConns: 100, ClientRater: rl}
//	proxy := &lb.ReverseProxy{Pool: pool, Limits: lim}
//
// # How it counts
//
// Each decision runs one script in Redis (EVALSHA, EVAL the first time):
// the generic cell rate algorithm (GCRA), which keeps one number per
// client, its theoretical arrival time, on Redis's clock (so the
// instances' clocks do not matter), and expires it when the client's
// bucket is full again. A refused client is refused locally, without a
// round trip, until the time Redis said a request would pass (that wait is
// also the 429's Retry-After), so a client that insists costs Redis one
// request per refill, not one per attempt.
//
// A decision waits for Redis at most Timeout (50 ms by default). When
// Redis fails or does not answer in time, the local share decides: a
// token bucket per client of Rate/Instances per second and
// Burst/Instances (rounded up), and Redis is not asked again for
// RetryAfter (one second by default); Stats().Fallbacks counts those
// decisions. go-redis reconnects by itself.
//
// # Bounds
//
// While Redis answers, the script runs atomically for the whole fleet and
// no increment is batched locally: in any interval of w seconds the fleet
// admits at most Burst + Rate·w requests of one client (TestFleetRate
// checks it over three instances). Decisions that time out may have been
// counted in Redis all the same: they only make the limit stricter.
//
// While Redis is away, each instance that serves the client admits at
// most Burst/Instances + Rate·w/Instances of its requests in w seconds on
// its own, so the fleet admits at most k/Instances of the shared bound,
// for the k instances the client reaches: the shared bound itself when
// Instances is the fleet's size. A client whose requests all reach one
// instance then gets only its share.
//
// # Cost
//
// A decision costs one round trip to Redis (none for a client refused
// locally) and an entry in a bounded local table (MaxClients, least
// recently seen first out), cut into 64 shards with a lock each so that
// concurrent decisions for different clients rarely contend. Stats and SharedStats (for
// lb/metrics.Collector.AddShared) count requests, fallbacks and errors.
package redisrate
