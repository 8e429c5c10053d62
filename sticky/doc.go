// Package sticky pins clients to servers (sticky sessions): the lb.Affinity
// implementations of lbkit.
//
//   - Cookie (HTTP, insert mode): the load balancer sets a cookie naming
//     the server it chose; its value is "<key id>.<tag>", a truncated
//     HMAC-SHA256 of the server's name under a secret key, so it reveals no
//     address and cannot be forged. Keys rotate with a grace period.
//   - SourceIP (TCP and HTTP): the client's address, optionally reduced to
//     a prefix, is pinned in a bounded table with LRU eviction and a TTL
//     refreshed on use, sharded so that parallel picks stay fast.
//
// Both plug into lb.Pool.Affinity. The Pool asks Lookup before its
// Balancer; a client without a usable pin is balanced normally and Pin (or,
// for the cookie, PinResponse through lb.ReverseProxy) records the new one.
//
// # Fallback
//
// When the pinned server is down, draining or removed, the request is
// balanced normally and the client re-pinned; both kinds call OnMove and can
// set a MovedHeader on the HTTP response so that the application knows the
// session moved. Both implement lb.PinReporter, so the Pool tells such a
// move from a new client: Lease.Moved, and the access record's StickyMoved
// (cookie flags "DI" in an HAProxy httplog line, "VN" for a pin honoured).
// When the pinned server is at its MaxConns the Pool waits
// for it, up to its QueueTimeout (the queue rule: with stickiness a request
// waits when its pinned server is full). A server that fails to connect is
// avoided for the rest of the request like any other, and the client is
// re-pinned to the server that answered.
//
// # Several instances
//
// Cookie stickiness needs no shared state: the cookie names the server, so
// instances behind DNS or ECMP honour each other's cookies when they have
// the same Keys (secrets, in any order of rotation they all know) and the
// same server Names; the configuration order, the addresses, the
// Balancer and its state do not matter, and a server one instance lacks
// or holds down is a moved pin there (TestCookieAcrossInstances checks
// three instances with their servers in different orders, and a fourth
// with another secret).
//
// A SourceIP table is per instance: a client that reaches another instance
// is pinned there afresh. For source-address affinity across instances,
// either share the table through Redis (package sticky/redistable: the
// same lb.Affinity with a local cache in front of Redis, falling back to
// local pins when Redis is away), or use consistent hashing,
// balancer.Hash{Key: balancer.SourceIP}, as the Pool's Balancer: every
// instance computes the same server for the same address under the
// conditions balancer's package documentation lists (same names and
// weights, no bounded load), with no state at all.
//
// With PROXY protocol reception configured on the frontend, PickInfo.Client
// is the address the header carried, so SourceIP keys by the real client
// rather than by the upstream proxy.
//
// # Usage
//
//	ck := &sticky.Cookie{
//		Cookie: http.Cookie{Name: "SRV", HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode},
//		Keys:   []sticky.Key{{Secret: secret}}, // 32 random bytes shared by the instances
//	}
//	if err := ck.Validate(); err != nil {
//		return err
//	}
//	pool := &lb.Pool{Name: "web", Affinity: ck}
//	proxy := &lb.ReverseProxy{Pool: pool} // sets the cookie on the way out
//
// and for L4:
//
//	pool := &lb.Pool{Name: "db", Affinity: &sticky.SourceIP{MaxEntries: 100000, TTL: time.Hour}}
//	srv := &lb.TCPFrontend{Backend: pool}
//
// # Design notes
//
// Cookie.Lookup does not compute an HMAC per request: the values of every
// server under every key are computed once per snapshot version and kept in
// a map behind an atomic pointer, so a lookup is a scan of the Cookie
// header and one map access, without allocation. The cookie is set in
// PinResponse (lb.ResponseAffinity), since Affinity.Pin has no response.
//
// SourceIP's table is split into shards of at least 256 entries (64 at
// most), each a map plus an intrusive LRU list under its own mutex; entries
// evicted are reused, so a full table does not allocate either. Expired
// entries are dropped when met (at lookup, or at the LRU tail when room is
// needed); no goroutine sweeps.
package sticky
