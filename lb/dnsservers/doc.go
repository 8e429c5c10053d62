// Package dnsservers keeps the servers of an [lb.Pool] in step with DNS,
// as HAProxy's server-template with a resolvers section does.
//
// A [Source] resolves a name to its A and AAAA records, each address a
// server at one port, or an SRV record (_service._proto.name) to its
// targets' addresses at each record's port. SRV weights become server
// weights, and priorities choose backups: the records of the lowest
// priority are the regular servers, every higher priority is a backup
// server (lb takes backups only while no regular server is pickable;
// lbkit does not order backups among themselves by priority).
//
//	pool := &lb.Pool{Name: "web", HealthChecker: monitor}
//	src := &dnsservers.Source{
//		Name:     "web.internal.example",
//		Port:     8080,
//		Template: lb.Server{MaxConns: 100},
//	}
//	go src.Run(ctx, pool) // re-resolves every 30 s, or sooner if a TTL says so
//
// # Updates keep state
//
// Each server is named after its address ("10.0.0.1:8080"), and [Source.Run]
// hands the whole set to [lb.Pool.Update], which matches servers by name:
// an address that stays in DNS keeps its health, its counters, its open
// connections and sessions, a drain or maintenance set by the operator;
// a new address starts in the pool's InitialState; an address that left
// DNS takes no new traffic while its connections finish. The set is
// sorted, so the rotation of records between answers changes nothing; the
// pool is updated only when the set differs.
//
// # Timing and failures
//
// Run resolves at once, then every Interval (30 s by default) or, when the
// least TTL of the records used is shorter, when it expires, but never
// sooner than MinInterval (1 s) after the last resolution, so that a TTL
// of 0 does not spin. A failed resolution (a timeout, SERVFAIL or another
// error code, NXDOMAIN, an empty answer) keeps the pool's last good
// servers: DNS trouble never empties a pool. It is logged at Warn level,
// counted in [Source.Stats] with its error, and retried after
// MinInterval, doubling with each further failure up to Interval.
//
// # Queries
//
// Queries go over UDP, with an EDNS(0) buffer of 1232 bytes, to
// Source.Server or else to the nameservers of /etc/resolv.conf in order,
// and again over TCP when an answer is truncated. Each query is bounded by
// Source.Timeout (2 s); answers are bounded in size, parsed by
// golang.org/x/net/dns/dnsmessage, and taken only when they are responses
// with the query's random ID and the same question (others are ignored
// as stray or forged, until the timeout). CNAME chains in an answer are
// followed. With Network "ip" (the default) a name's A and AAAA records
// are both asked and both queries must succeed; "ip4" and "ip6" ask one
// type. The addresses of SRV targets come from the answer's additional
// section when it has some for a target, from A/AAAA queries otherwise; a
// target without addresses is skipped. Only the first MaxSRVTargets (256)
// records of an SRV answer are used, lowest priorities first, and a whole
// resolution, every query included, is bounded by four times
// Source.Timeout (8 s by default).
//
// No search domain is appended to Name, and answers are not validated
// with DNSSEC: use a trusted recursive resolver on a trusted path, as
// whoever answers chooses where traffic goes.
package dnsservers
