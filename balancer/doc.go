// Package balancer implements the load-balancing algorithms of lbkit as
// lb.Balancer values: smooth weighted round robin, least connections, first
// available, weighted random, power of two choices, and consistent hashing
// with bounded load.
//
// Set one as the Balancer of an lb.Pool, or build one from a configuration
// string with ByName:
//
//	pool := &lb.Pool{Name: "web", Balancer: &balancer.LeastConn{}}
//	err := pool.Update([]lb.Server{
//		{Name: "web1", Addr: "10.0.0.1:80", Weight: 2},
//		{Name: "web2", Addr: "10.0.0.2:80"},
//	})
//
//	// From a flag: -balance 'hash:cookie:sid,bounded=1.25'
//	b, err := balancer.ByName(*balance)
//	pool := &lb.Pool{Name: "api", Balancer: b}
//
// # Choosing an algorithm
//
//	Algorithm   Pick cost       Weights  Use it when
//	RoundRobin  O(1)            yes      requests cost about the same (the default);
//	                                     smooth: weighted turns are interleaved
//	LeastConn   O(1): exact up  yes      durations vary widely (long polls, WebSockets,
//	            to 32 servers,           database connections)
//	            a window of 32
//	            beyond
//	First       O(n), stops     no       you want to fill servers one after another up to
//	            early                    MaxConns (scale-to-zero fleets, licences)
//	Random      O(log n)        yes      many independent proxies share servers and a
//	                                     shared rotation is not worth having
//	P2C         O(log n)        yes      like LeastConn for thousands of servers, or when
//	                                     several proxies balance the same servers
//	Hash        O(1)            yes      a client, user or URL should stick to one server
//	                                     (caches, sessions without cookies); add
//	                                     BoundedLoad so hot keys cannot overload a server
//
// RoundRobin, LeastConn, Random and P2C spread load; Hash keeps affinity;
// First concentrates load. For affinity that must survive server changes,
// prefer the sticky package (a cookie that names the server) over Hash:
// hashing moves some keys whenever servers join.
//
// # Several instances
//
// Load balancers behind one address (DNS, ECMP) share no state, yet Hash
// sends a key to the same server on each of them when they have:
//
//   - the same servers, by Name, with the same weights (no slow-start
//     ramp in progress on one of them): the Maglev table depends on the
//     names and weights only, not on the configuration order nor on Addr;
//   - the same servers pickable (health checks that agree);
//   - no BoundedLoad: the bound depends on each instance's own active
//     counts, so overflowing keys go elsewhere on each;
//   - tables built from the same servers: an instance started while a
//     server was down builds its table without it and places a share of
//     the keys differently until that server is back, when it rebuilds
//     the same table as the others.
//
// TestHashAcrossInstances checks these conditions. The other algorithms
// depend on each instance's own counters and agree only by chance; for
// affinity across instances use Hash, the sticky package's Cookie (with a
// shared secret) or sticky/redistable (a table shared through Redis).
//
// # Contract
//
// Every Pick in this package is lock-free and allocation-free, is safe for
// concurrent use, and returns one of the servers of the snapshot it is given
// (which the Pool guarantees is non-empty and holds only pickable servers).
// Per-snapshot precomputation (round-robin schedules, cumulative weights,
// Maglev tables) happens in Prepare (lb.Preparer), which the Pool calls
// when it publishes a snapshot. Active counts come from the Pool: they are
// the connections or requests between Pool.Acquire and Lease.Done.
//
// # Exact and approximate picks
//
// LeastConn is exact up to 32 servers; beyond, it picks the least loaded of
// a window of 32 servers that moves by a coprime stride, so that every
// server is compared every ⌈n/32⌉ picks (see LeastConn). P2C and Random
// sample by design. Hash's bounded load compares each server with the
// Pool's total of leases in flight (lb.Snapshot.Active), which counts
// draining and down servers until their leases end. No pick sums or
// scans every server of a large pool.
//
// Custom algorithms implement lb.Balancer (or are an lb.BalancerFunc); the
// lb/lbtest package has the conformance tests and benchmarks that this
// package's algorithms pass.
package balancer
