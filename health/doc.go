// Package health checks that the servers of a Pool really work, so that the
// Pool only sends traffic to those that do.
//
// A Monitor is an lb.HealthChecker: Pool.Run starts it, and it reports each
// server as up, going down, down or going up, with the reason of the last
// failed check, through the Pool (Pool.Status shows both and the time of the
// last change). Probes are one small interface with built-in
// implementations:
//
//   - TCP: connect; optionally a TLS handshake (for bridged servers), and
//     bytes to send and a reply to expect.
//   - HTTP (and HTTPS with TLS set): method, path, Host header, expected
//     status or range, optional body match; for HTTPS the SNI and the
//     certificate verification follow the TLS configuration given, normally
//     the one the proxy uses towards the servers.
//   - MySQL: the server's greeting, optionally a password-less login, QUIT.
//   - PostgreSQL: a StartupMessage; an authentication request or an error
//     response means alive.
//   - Redis: optional AUTH, then PING must get +PONG.
//   - LDAP: an anonymous LDAPv3 bind must succeed.
//
// Package [github.com/lbkit/lbkit/health/grpchealth] adds a gRPC probe (the
// grpc.health.v1 Check call, over TLS or h2c), kept apart so that grpc-go
// is linked only by programs that use it. Probes written outside this
// package mark TLS handshake failures with [HandshakeError].
//
// Every probe connects through Target.Connect, which applies the check port
// (Monitor.Port, or the "check-port" entry of the server's Meta), the
// Monitor's timeout, the Pool's Dial and, when the Pool has a ProxyHeader,
// its LOCAL form (unless Monitor.NoProxyHeader). The
// protocol parsers are written for these handshakes alone: they read at most
// a few kilobytes, check every length and never take another protocol for
// theirs.
//
// Defaults follow HAProxy: a check every 3 s, 1 s timeout, down after 3
// consecutive failures, up after 2 consecutive passes, 0.5 s between checks
// while a server changes state (and while it is down, so that a recovered
// server is back within about a second), each wait shortened by up to 10%
// of jitter. The initial state is the Pool's explicit InitialState;
// maintenance and draining remain the host's decisions.
//
// Passive checks: as an lb.Observer the Monitor sees how real traffic ends.
// Passive.Failures consecutive connection failures or 5xx responses eject a
// server for Passive.Backoff; active checks then bring it back. Set the
// Pool's ShutdownOnDown to also close the open sessions of a server that
// goes down.
//
// # Usage
//
//	mon := &health.Monitor{
//		Probe:    health.HTTP{Path: "/healthz"},
//		Passive:  health.Passive{Failures: 5},
//		OnChange: func(e health.Event) { log.Printf("%s: %s -> %s %s", e.Server, e.From, e.To, e.Reason) },
//	}
//	pool := &lb.Pool{Name: "web", HealthChecker: mon}
//	if err := pool.Update(servers); err != nil {
//		return err
//	}
//	go pool.Run(ctx) // runs the checks until ctx ends
//
// # Design notes
//
// Each Watch call (one per pool) runs one goroutine that owns the state of
// its servers and a timer for the next due check; checks run on goroutines
// started per check, at most Concurrency at a time, so a large pool costs a
// bounded number of goroutines. State is keyed by pool, server name and
// checked address. Reports go through the Pool's SetHealth, which leaves a
// server in maintenance alone. The state machine is tested with
// testing/synctest; the probes against real MariaDB, PostgreSQL, Redis and
// OpenLDAP servers (see internal/testservers).
package health
