package dnsservers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbkit/lbkit/lb"
)

// Defaults of the Source's zero-valued fields.
const (
	DefaultInterval    = 30 * time.Second
	DefaultMinInterval = time.Second
	DefaultTimeout     = 2 * time.Second

	// MaxSRVTargets is how many targets of an SRV answer a resolution
	// uses, those of the lowest priorities (then names, then ports)
	// first: a 64 KiB answer holds some 1500 records, and each target
	// without an address in the answer's additional section costs queries
	// of its own.
	MaxSRVTargets = 256

	// resolveTimeouts is how many Timeouts a whole resolution may take.
	resolveTimeouts = 4
)

// Source keeps the servers of an [lb.Pool] in step with DNS: the
// addresses of a name (A and AAAA records) at one port, or the targets of
// an SRV record with their ports, weights and priorities.
//
// Configure the exported fields before the first call to Resolve or Run
// and do not change them afterwards. Resolve and Stats are safe for
// concurrent use; Run is meant to be called once per Source, and owns the
// servers of its Pool while it runs.
type Source struct {
	// Name is the name to resolve: a host name for A/AAAA records, or
	// an SRV name such as "_http._tcp.example.com" when SRV is set. It is
	// taken as fully qualified: no search domain of resolv.conf is
	// appended.
	Name string

	// Port is the port of every server of an A/AAAA lookup, 1 to 65535.
	// It is ignored with SRV, whose records carry their ports.
	Port int

	// SRV makes Name an SRV record: each target's addresses at the
	// record's port become servers, the record's weight their Weight (0
	// counts as 1, as everywhere in lb; each address of a target gets the
	// whole weight), and the records of the lowest priority the regular
	// servers while every higher priority becomes Backup servers. An
	// address that two records give is taken once, from the record of the
	// lowest priority. Only the first MaxSRVTargets records count, in the
	// order of priority, target name and port.
	SRV bool

	// Network chooses the address records asked for a name (Name, or the
	// targets of SRV records): "ip" (or empty) asks A and AAAA, "ip4"
	// A only, "ip6" AAAA only. With "ip", both answers must succeed (an
	// empty one is fine when the other has addresses), so that a failed
	// AAAA query never takes the IPv6 servers out.
	Network string

	// Server is the DNS server asked, "host:port" (a bare IP address means
	// port 53). Empty means the nameservers of /etc/resolv.conf, tried in
	// order until one answers (NOERROR or NXDOMAIN), or 127.0.0.1:53 when
	// it lists none.
	Server string

	// Timeout bounds each query to one DNS server, its TCP retry
	// included, and four times it the whole resolution (the SRV query and
	// those of its targets' addresses, over every nameserver tried). Zero
	// means DefaultTimeout.
	Timeout time.Duration

	// Interval is the time between resolutions. Zero means
	// DefaultInterval. When the records have a shorter TTL, the next
	// resolution comes when the least TTL expires, but never sooner than
	// MinInterval after the last one.
	Interval time.Duration

	// MinInterval is the shortest time between two resolutions, so that a
	// TTL of 0 does not spin, and the first wait after a failed one: each
	// further failure doubles the wait, up to Interval. Zero means
	// DefaultMinInterval.
	MinInterval time.Duration

	// Template is copied onto every server: MaxConns, Meta and, for
	// A/AAAA names, Weight. Its Name and Addr are ignored (each server is
	// named after its address, "ip:port", so that a server that stays in
	// DNS keeps its state in the Pool), and so are Weight and Backup with
	// SRV, where the records say.
	Template lb.Server

	// Logger receives changes of the server set (Info) and failed
	// resolutions (Warn). Nil means slog.Default().
	Logger *slog.Logger

	mu    sync.Mutex
	stats Stats
}

// Stats is a snapshot of a Source's resolutions.
type Stats struct {
	// Resolutions counts the resolutions done, failed ones included.
	Resolutions uint64
	// Failures counts the resolutions that failed: timeouts, SERVFAIL,
	// NXDOMAIN, empty answers. After a failure the Pool keeps its last
	// good servers.
	Failures uint64
	// Changes counts the updates of the Pool's servers, the first one
	// included.
	Changes uint64
	// Servers is the number of servers of the last good resolution.
	Servers int
	// LastError is the error of the last failed resolution, nil when none
	// failed; LastErrorTime is its time.
	LastError     error
	LastErrorTime time.Time
	// LastSuccess is the time of the last good resolution.
	LastSuccess time.Time
	// LastChange is the time the Pool's servers last changed.
	LastChange time.Time
	// TTL is the least TTL of the records of the last good resolution.
	TTL time.Duration
}

// Stats returns a snapshot of the resolutions so far. It is safe for
// concurrent use.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Resolve resolves Name once and returns the servers it gives, in a
// stable order (by priority, then address), Template applied. An
// unknown name, a failure of every DNS server or an answer without usable
// records is an error (see ErrNotFound, ErrNoRecords, ErrServerFailure).
// It does not count in Stats.
func (s *Source) Resolve(ctx context.Context) ([]lb.Server, error) {
	servers, _, err := s.resolve(ctx)
	return servers, err
}

// Run resolves Name at once and then again as Interval and the records'
// TTL say, and hands each new set of servers to pool.Update. Servers are
// named after their address, so the servers that stay keep their health,
// counters and sessions; the ones that leave DNS drain. A failed
// resolution leaves the pool as it is, is logged and counted in Stats, and
// is retried sooner (see MinInterval). When the very first resolution
// fails the pool keeps the servers it had.
//
// Run returns when ctx is done, with ctx's error, or at once with an error
// for an invalid configuration. The pool's servers belong to Run while it
// runs: other calls to pool.Update are overwritten at the next change.
func (s *Source) Run(ctx context.Context, pool *lb.Pool) error {
	if err := s.check(); err != nil {
		return err
	}
	if pool == nil {
		return errors.New("dnsservers: Run without a pool")
	}
	log := s.logger()
	var last []lb.Server
	applied := false
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		servers, ttl, err := s.resolve(ctx)
		now := time.Now()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		wait := s.interval()
		if err == nil && (!applied || !slices.EqualFunc(last, servers, sameServer)) {
			if uerr := pool.Update(servers); uerr != nil {
				err = fmt.Errorf("dnsservers: %s: %w", s.Name, uerr)
			} else {
				log.LogAttrs(ctx, slog.LevelInfo, "dnsservers: servers changed",
					slog.String("pool", pool.Name), slog.String("name", s.Name),
					slog.Int("servers", len(servers)), slog.Int("added", len(diff(servers, last))),
					slog.Int("removed", len(diff(last, servers))))
				last, applied = servers, true
				s.mu.Lock()
				s.stats.Changes++
				s.stats.LastChange = now
				s.mu.Unlock()
			}
		}
		s.mu.Lock()
		s.stats.Resolutions++
		if err != nil {
			s.stats.Failures++
			s.stats.LastError, s.stats.LastErrorTime = err, now
		} else {
			s.stats.LastSuccess, s.stats.Servers, s.stats.TTL = now, len(servers), ttl
		}
		s.mu.Unlock()
		if err != nil {
			failures++
			wait = s.backoff(failures)
			log.LogAttrs(ctx, slog.LevelWarn, "dnsservers: resolution failed, keeping the last servers",
				slog.String("pool", pool.Name), slog.String("name", s.Name),
				slog.Any("error", err), slog.Duration("retry", wait))
		} else {
			failures = 0
			if ttl >= 0 {
				wait = max(min(wait, ttl), s.minInterval())
			}
		}
		timer.Reset(wait)
	}
}

// backoff returns the wait after the nth failure in a row: MinInterval,
// doubled with each further failure, up to Interval.
func (s *Source) backoff(n int) time.Duration {
	wait, limit := s.minInterval(), s.interval()
	for i := 1; i < n && wait < limit; i++ {
		if wait > limit/2 {
			return limit
		}
		wait *= 2
	}
	return min(wait, limit)
}

// sameServer compares what Resolve sets of two servers.
func sameServer(a, b lb.Server) bool {
	return a.Name == b.Name && a.Addr == b.Addr && a.Weight == b.Weight && a.Backup == b.Backup
}

// diff returns the names of a's servers that b lacks.
func diff(a, b []lb.Server) []string {
	var out []string
	for _, s := range a {
		if !slices.ContainsFunc(b, func(t lb.Server) bool { return t.Name == s.Name }) {
			out = append(out, s.Name)
		}
	}
	return out
}

func (s *Source) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Source) interval() time.Duration { return cmp.Or(max(s.Interval, 0), DefaultInterval) }

func (s *Source) minInterval() time.Duration {
	return min(cmp.Or(max(s.MinInterval, 0), DefaultMinInterval), s.interval())
}

func (s *Source) timeout() time.Duration { return cmp.Or(max(s.Timeout, 0), DefaultTimeout) }

// check validates the configuration.
func (s *Source) check() error {
	if s.Name == "" {
		return errors.New("dnsservers: empty Name")
	}
	if !validName(s.Name) {
		return fmt.Errorf("dnsservers: Name %q is not a DNS name", s.Name)
	}
	if !s.SRV && (s.Port < 1 || s.Port > 65535) {
		return fmt.Errorf("dnsservers: %s: Port %d out of range 1-65535", s.Name, s.Port)
	}
	if _, err := s.addrTypes(); err != nil {
		return err
	}
	if s.Server != "" {
		if _, err := serverAddr(s.Server); err != nil {
			return err
		}
	}
	return nil
}

// addrTypes returns the address record types Network asks for.
func (s *Source) addrTypes() ([]dnsmessage.Type, error) {
	switch s.Network {
	case "", "ip":
		return []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}, nil
	case "ip4":
		return []dnsmessage.Type{dnsmessage.TypeA}, nil
	case "ip6":
		return []dnsmessage.Type{dnsmessage.TypeAAAA}, nil
	}
	return nil, fmt.Errorf("dnsservers: unknown Network %q (want ip, ip4 or ip6)", s.Network)
}

// serverAddr returns the DNS server address as host:port.
func serverAddr(server string) (string, error) {
	if ip, err := netip.ParseAddr(server); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(server)
	if err != nil || host == "" {
		return "", fmt.Errorf("dnsservers: Server %q is not host:port or an IP address", server)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("dnsservers: Server %q: bad port", server)
	}
	return server, nil
}

// validName reports whether name is a DNS name: dot-separated labels of 1
// to 63 bytes, 253 bytes in all without the optional final dot, no
// spaces or control characters.
func validName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := range len(label) {
			if c := label[i]; c <= ' ' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

// fqdn returns name with a final dot.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// resolve returns the servers of Name and the least TTL of the records
// used (-1 when unknown).
func (s *Source) resolve(ctx context.Context) ([]lb.Server, time.Duration, error) {
	if err := s.check(); err != nil {
		return nil, -1, err
	}
	var nameservers []string
	if s.Server != "" {
		addr, _ := serverAddr(s.Server)
		nameservers = []string{addr}
	} else {
		var err error
		if nameservers, err = systemServers(); err != nil {
			return nil, -1, err
		}
	}
	budget := resolveTimeouts * s.timeout()
	deadline := time.Now().Add(budget)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	servers, ttl, err := s.resolveWith(ctx, nameservers)
	if err != nil && !time.Now().Before(deadline) {
		// A query's own deadline is the resolution's: say which ran out.
		err = fmt.Errorf("%w (resolving %s took over %s, %d × Timeout)", err, s.Name, budget, resolveTimeouts)
	}
	return servers, ttl, err
}

// resolveWith is resolve within ctx's deadline, asking nameservers.
func (s *Source) resolveWith(ctx context.Context, nameservers []string) ([]lb.Server, time.Duration, error) {
	r := &resolver{servers: nameservers, timeout: s.timeout()}
	r.types, _ = s.addrTypes()
	name := dnsmessage.MustNewName(fqdn(s.Name))
	if s.SRV {
		return s.resolveSRV(ctx, r, name)
	}
	addrs, ttl, err := r.addrs(ctx, name, nil)
	if err != nil {
		return nil, -1, err
	}
	servers := make([]lb.Server, 0, len(addrs))
	for _, ip := range addrs {
		servers = append(servers, s.server(ip, uint16(s.Port), s.Template.Weight, false))
	}
	return servers, ttl, nil
}

// resolveSRV resolves the SRV record name and the addresses of its
// targets.
func (s *Source) resolveSRV(ctx context.Context, r *resolver, name dnsmessage.Name) ([]lb.Server, time.Duration, error) {
	a, err := r.query(ctx, name, dnsmessage.TypeSRV)
	if err != nil {
		return nil, -1, err
	}
	srvs := slices.DeleteFunc(a.srvs, func(rr dnsmessage.SRVResource) bool {
		return rr.Target.String() == "." // "no service here" (RFC 2782)
	})
	if len(srvs) == 0 {
		return nil, -1, fmt.Errorf("%w: %s SRV", ErrNoRecords, name)
	}
	slices.SortStableFunc(srvs, func(x, y dnsmessage.SRVResource) int {
		return cmp.Or(cmp.Compare(x.Priority, y.Priority), cmp.Compare(lower(x.Target), lower(y.Target)), cmp.Compare(x.Port, y.Port))
	})
	if len(srvs) > MaxSRVTargets {
		srvs = srvs[:MaxSRVTargets]
	}
	ttl := a.minTTL
	var servers []lb.Server
	seen := make(map[string]bool)
	for _, rr := range srvs {
		addrs, t, err := r.addrs(ctx, rr.Target, a)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoRecords) {
			// One target gone from DNS does not fail the others; if
			// none is left, the set is empty and the resolution fails.
			continue
		}
		if err != nil {
			return nil, -1, err
		}
		ttl = minTTL(ttl, t)
		for _, ip := range addrs {
			srv := s.server(ip, rr.Port, int(rr.Weight), rr.Priority > srvs[0].Priority)
			if !seen[srv.Name] {
				seen[srv.Name] = true
				servers = append(servers, srv)
			}
		}
	}
	if len(servers) == 0 {
		return nil, -1, fmt.Errorf("%w: no address for the targets of %s SRV", ErrNoRecords, name)
	}
	return servers, ttl, nil
}

// server builds the server at ip:port from the template.
func (s *Source) server(ip netip.Addr, port uint16, weight int, backup bool) lb.Server {
	srv := s.Template
	srv.Addr = netip.AddrPortFrom(ip, port).String()
	srv.Name = srv.Addr
	srv.Weight = weight
	srv.Backup = backup
	return srv
}

// minTTL returns the lesser of two TTLs, where a negative one is unknown.
func minTTL(a, b time.Duration) time.Duration {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// resolver asks a list of DNS servers.
type resolver struct {
	servers []string
	timeout time.Duration
	types   []dnsmessage.Type // address types to ask
}

// query asks each server in turn until one answers NOERROR or NXDOMAIN.
func (r *resolver) query(ctx context.Context, name dnsmessage.Name, t dnsmessage.Type) (*answer, error) {
	var err error
	for _, server := range r.servers {
		var a *answer
		a, err = exchange(ctx, server, name, t, r.timeout)
		if err == nil || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return a, err
		}
	}
	return nil, err
}

// addrs returns the sorted addresses of name for r.types and their least
// TTL. The addresses of an SRV answer's additional section (srv, nil for
// none) are used when it has some for name, as one answer gives them for
// every type.
func (r *resolver) addrs(ctx context.Context, name dnsmessage.Name, srv *answer) ([]netip.Addr, time.Duration, error) {
	var out []netip.Addr
	ttl := time.Duration(-1)
	if srv != nil {
		for _, ip := range srv.extra[lower(name)] {
			if ip.Is4() && slices.Contains(r.types, dnsmessage.TypeA) || ip.Is6() && slices.Contains(r.types, dnsmessage.TypeAAAA) {
				out = append(out, ip)
			}
		}
		if len(out) > 0 {
			ttl = srv.ttl[lower(name)]
		}
	}
	if len(out) == 0 {
		for _, t := range r.types {
			a, err := r.query(ctx, name, t)
			if err != nil {
				return nil, -1, err
			}
			out = append(out, a.addrs...)
			if len(a.addrs) > 0 {
				ttl = minTTL(ttl, a.minTTL)
			}
		}
	}
	if len(out) == 0 {
		return nil, -1, fmt.Errorf("%w: no address for %s", ErrNoRecords, name)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), ttl, nil
}
