package dnsservers_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/dnsservers"
)

func resolve(t *testing.T, s *dnsservers.Source) ([]lb.Server, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return s.Resolve(ctx)
}

// addrs lists the servers' addresses, with "+w" for a weight and
// "(backup)" for backups, in order.
func addrs(servers []lb.Server) []string {
	var out []string
	for _, s := range servers {
		a := s.Addr
		if s.Weight != 0 {
			a += "+" + strconv.Itoa(s.Weight)
		}
		if s.Backup {
			a += "(backup)"
		}
		out = append(out, a)
	}
	return out
}

func TestResolveAddresses(t *testing.T) {
	f := startFakeDNS(t, zone(t,
		a("web.test.", "10.0.0.3", 60), a("web.test.", "10.0.0.1", 30), a("web.test.", "10.0.0.3", 60),
		a("web.test.", "fd00::1", 60)))
	for _, tc := range []struct {
		network string
		want    []string
	}{
		{"", []string{"10.0.0.1:8080", "10.0.0.3:8080", "[fd00::1]:8080"}},
		{"ip4", []string{"10.0.0.1:8080", "10.0.0.3:8080"}},
		{"ip6", []string{"[fd00::1]:8080"}},
	} {
		t.Run("network="+tc.network, func(t *testing.T) {
			src := &dnsservers.Source{Name: "web.test", Port: 8080, Server: f.addr, Network: tc.network,
				Template: lb.Server{Name: "ignored", Addr: "ignored", MaxConns: 7, Meta: map[string]string{"zone": "a"}}}
			got, err := resolve(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(addrs(got), tc.want) {
				t.Fatalf("servers %v, want %v", addrs(got), tc.want)
			}
			for _, s := range got {
				if s.Name != s.Addr || s.MaxConns != 7 || s.Meta["zone"] != "a" {
					t.Errorf("server %+v: want Name = Addr and the template's MaxConns and Meta", s)
				}
			}
		})
	}
}

func TestResolveFollowsCNAME(t *testing.T) {
	f := startFakeDNS(t, func(q query) [][]byte {
		rrs := []dnsmessage.Resource{cname("www.test.", "Edge.Test.", 60), cname("edge.test.", "real.test.", 60)}
		if q.Q.Type == dnsmessage.TypeA {
			// An address of another name than the chain's is not taken.
			rrs = append(rrs, a("real.test.", "10.0.0.9", 60), a("other.test.", "10.0.0.66", 60))
		}
		return [][]byte{msg{rrs: rrs}.pack(t, q)}
	})
	got, err := resolve(t, &dnsservers.Source{Name: "www.test", Port: 80, Server: f.addr})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.9:80"}; !slices.Equal(addrs(got), want) {
		t.Fatalf("servers %v, want %v", addrs(got), want)
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    msg
		want error
	}{
		{"SERVFAIL", msg{rcode: dnsmessage.RCodeServerFailure}, dnsservers.ErrServerFailure},
		{"REFUSED", msg{rcode: dnsmessage.RCodeRefused}, dnsservers.ErrServerFailure},
		{"NXDOMAIN", msg{rcode: dnsmessage.RCodeNameError}, dnsservers.ErrNotFound},
		{"empty", msg{}, dnsservers.ErrNoRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeDNS(t, func(q query) [][]byte { return [][]byte{tc.m.pack(t, q)} })
			_, err := resolve(t, &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// One of the two address queries failing fails the resolution, so that a
// SERVFAIL for AAAA does not take the IPv6 servers out.
func TestResolveHalfFailure(t *testing.T) {
	f := startFakeDNS(t, func(q query) [][]byte {
		if q.Q.Type == dnsmessage.TypeAAAA {
			return [][]byte{msg{rcode: dnsmessage.RCodeServerFailure}.pack(t, q)}
		}
		return [][]byte{msg{rrs: []dnsmessage.Resource{a("web.test.", "10.0.0.1", 60)}}.pack(t, q)}
	})
	if _, err := resolve(t, &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr}); !errors.Is(err, dnsservers.ErrServerFailure) {
		t.Fatalf("error %v, want ErrServerFailure", err)
	}
}

func TestResolveTruncatedRetriesOverTCP(t *testing.T) {
	f := startFakeDNS(t, func(q query) [][]byte {
		if !q.TCP {
			return [][]byte{msg{tc: true, rrs: []dnsmessage.Resource{a("web.test.", "10.0.0.1", 60)}}.pack(t, q)}
		}
		var rrs []dnsmessage.Resource
		for i := range 100 { // more than 1232 bytes
			rrs = append(rrs, a("web.test.", "10.0.1."+strconv.Itoa(i+1), 60))
		}
		return [][]byte{msg{rrs: rrs}.pack(t, q)}
	})
	got, err := resolve(t, &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr, Network: "ip4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("%d servers, want the 100 of the TCP answer", len(got))
	}
	if f.udp.Load() != 1 || f.tcp.Load() != 1 {
		t.Fatalf("%d UDP and %d TCP queries, want 1 and 1", f.udp.Load(), f.tcp.Load())
	}
}

// Over UDP, answers with another ID or question are ignored, and the one
// that matches is taken.
func TestResolveIgnoresMismatchedAnswers(t *testing.T) {
	f := startFakeDNS(t, func(q query) [][]byte {
		forged := []dnsmessage.Resource{a("web.test.", "10.6.6.6", 60)}
		return [][]byte{
			msg{id: q.ID + 1, rrs: forged}.pack(t, q),
			msg{qname: "evil.test.", rrs: forged}.pack(t, q),
			msg{rrs: []dnsmessage.Resource{a("web.test.", "10.0.0.1", 60)}}.pack(t, q),
		}
	})
	got, err := resolve(t, &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr, Network: "ip4"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:80"}; !slices.Equal(addrs(got), want) {
		t.Fatalf("servers %v, want %v", addrs(got), want)
	}
}

// A server that only sends mismatched answers times the query out.
func TestResolveOnlyMismatchedTimesOut(t *testing.T) {
	f := startFakeDNS(t, func(q query) [][]byte {
		return [][]byte{msg{id: q.ID ^ 0x8000, rrs: []dnsmessage.Resource{a("web.test.", "10.6.6.6", 60)}}.pack(t, q)}
	})
	_, err := resolve(t, &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr, Network: "ip4", Timeout: 200 * time.Millisecond})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %v, want a timeout", err)
	}
}

func TestResolveSRV(t *testing.T) {
	const name = "_http._tcp.svc.test."
	f := startFakeDNS(t, zone(t,
		srv(name, "b.test.", 10, 1, 8002, 60),
		srv(name, "a.test.", 10, 5, 8001, 60),
		srv(name, "c.test.", 20, 3, 8003, 60),
		srv(name, "gone.test.", 10, 1, 8009, 60), // NXDOMAIN: skipped
		srv(name, ".", 30, 0, 0, 60),             // no service: skipped
		a("a.test.", "127.0.0.2", 60), a("b.test.", "127.0.0.3", 60), a("b.test.", "::1", 60),
		a("c.test.", "127.0.0.4", 60)))
	got, err := resolve(t, &dnsservers.Source{Name: "_http._tcp.svc.test", SRV: true, Server: f.addr,
		Template: lb.Server{Weight: 9, Backup: true, MaxConns: 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.2:8001+5", "127.0.0.3:8002+1", "[::1]:8002+1", "127.0.0.4:8003+3(backup)"}
	if !slices.Equal(addrs(got), want) {
		t.Fatalf("servers %v, want %v", addrs(got), want)
	}
	if got[0].MaxConns != 2 {
		t.Errorf("MaxConns %d, want the template's 2", got[0].MaxConns)
	}
}

// The addresses of an SRV answer's additional section are used without
// asking again.
func TestResolveSRVAdditional(t *testing.T) {
	const name = "_http._tcp.svc.test."
	f := startFakeDNS(t, func(q query) [][]byte {
		if q.Q.Type != dnsmessage.TypeSRV {
			return [][]byte{msg{rcode: dnsmessage.RCodeServerFailure}.pack(t, q)}
		}
		return [][]byte{msg{rrs: []dnsmessage.Resource{srv(name, "a.test.", 0, 0, 8001, 60)},
			extra: []dnsmessage.Resource{a("a.test.", "127.0.0.2", 5)}}.pack(t, q)}
	})
	got, err := resolve(t, &dnsservers.Source{Name: name, SRV: true, Server: f.addr})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.2:8001"}; !slices.Equal(addrs(got), want) {
		t.Fatalf("servers %v, want %v", addrs(got), want)
	}
	if n := f.udp.Load(); n != 1 {
		t.Fatalf("%d queries, want the SRV one only", n)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, src := range []*dnsservers.Source{
		{Port: 80},
		{Name: "web.test"},
		{Name: "web.test", Port: 70000},
		{Name: "web.test", Port: 80, Network: "tcp"},
		{Name: "web.test", Port: 80, Server: "no-port"},
		{Name: "web..test", Port: 80},
	} {
		if _, err := src.Resolve(t.Context()); err == nil {
			t.Errorf("%+v: no error", src)
		}
		if err := src.Run(t.Context(), &lb.Pool{}); err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("%+v: Run returned %v, want a configuration error", src, err)
		}
	}
}

// poolAddrs lists the configured servers of pool as addrs does.
func poolAddrs(pool *lb.Pool) []string {
	var out []string
	for _, st := range pool.Status() {
		if st.Removed {
			continue
		}
		a := st.Addr
		if st.Weight != 0 {
			a += "+" + strconv.Itoa(st.Weight)
		}
		if st.Backup {
			a += "(backup)"
		}
		out = append(out, a)
	}
	return out
}

// runSource runs src on pool until the test ends.
func runSource(t *testing.T, src *dnsservers.Source, pool *lb.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, pool) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

func TestRunKeepsLastGoodSet(t *testing.T) {
	good := zone(t, a("web.test.", "10.0.0.1", 3600), a("web.test.", "10.0.0.2", 3600))
	f := startFakeDNS(t, good)
	src := &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr, Network: "ip4",
		Interval: 50 * time.Millisecond, MinInterval: 10 * time.Millisecond}
	pool := &lb.Pool{Name: "web"}
	runSource(t, src, pool)
	want := []string{"10.0.0.1:80", "10.0.0.2:80"}
	testutil.Eventually(t, "the first servers", func() bool { return slices.Equal(poolAddrs(pool), want) })

	for _, h := range []func(q query) [][]byte{
		func(q query) [][]byte { return [][]byte{msg{rcode: dnsmessage.RCodeServerFailure}.pack(t, q)} },
		func(q query) [][]byte { return [][]byte{msg{rcode: dnsmessage.RCodeNameError}.pack(t, q)} },
		func(q query) [][]byte { return [][]byte{msg{}.pack(t, q)} },
	} {
		before := src.Stats().Failures
		f.setHandle(h)
		testutil.Eventually(t, "a failed resolution", func() bool { return src.Stats().Failures >= before+2 })
		if got := poolAddrs(pool); !slices.Equal(got, want) {
			t.Fatalf("after a failure the pool has %v, want the last good %v", got, want)
		}
	}
	st := src.Stats()
	if st.LastError == nil || st.LastErrorTime.IsZero() || st.Changes != 1 || st.Servers != 2 {
		t.Fatalf("stats %+v: want a last error, 1 change, 2 servers", st)
	}
	if !errors.Is(st.LastError, dnsservers.ErrNoRecords) {
		t.Errorf("last error %v, want ErrNoRecords", st.LastError)
	}

	f.setHandle(zone(t, a("web.test.", "10.0.0.2", 3600)))
	testutil.Eventually(t, "the recovered servers", func() bool { return slices.Equal(poolAddrs(pool), []string{"10.0.0.2:80"}) })
	if st := src.Stats(); st.Changes != 2 || st.LastChange.IsZero() {
		t.Fatalf("stats %+v: want 2 changes", st)
	}
}

// A TTL of 0 re-resolves at MinInterval, long before Interval.
func TestRunHonoursTTL(t *testing.T) {
	f := startFakeDNS(t, zone(t, a("web.test.", "10.0.0.1", 0)))
	src := &dnsservers.Source{Name: "web.test", Port: 80, Server: f.addr, Network: "ip4",
		Interval: time.Hour, MinInterval: 20 * time.Millisecond}
	pool := &lb.Pool{Name: "web"}
	runSource(t, src, pool)
	testutil.Eventually(t, "three resolutions within the hour's interval", func() bool { return src.Stats().Resolutions >= 3 })
	if st := src.Stats(); st.TTL != 0 || st.Changes != 1 || st.Failures != 0 {
		t.Fatalf("stats %+v: want TTL 0, one change, no failure", st)
	}
}

// srvMany answers an SRV query for name with targets t0.test. to
// t<n-1>.test. (over TCP: UDP gets a truncated answer), and A queries with
// 127.0.0.1 after delay.
func srvMany(t *testing.T, name string, n int, delay time.Duration) func(q query) [][]byte {
	return func(q query) [][]byte {
		switch q.Q.Type {
		case dnsmessage.TypeSRV:
			if !q.TCP {
				return [][]byte{msg{tc: true}.pack(t, q)}
			}
			var rrs []dnsmessage.Resource
			for i := range n {
				rrs = append(rrs, srv(name, "t"+strconv.Itoa(i)+".test.", 0, 0, uint16(10000+i), 60))
			}
			return [][]byte{msg{rrs: rrs}.pack(t, q)}
		case dnsmessage.TypeA:
			time.Sleep(delay) // a slow nameserver
			return [][]byte{msg{rrs: []dnsmessage.Resource{a(q.Q.Name.String(), "127.0.0.1", 60)}}.pack(t, q)}
		}
		return [][]byte{msg{rcode: dnsmessage.RCodeServerFailure}.pack(t, q)}
	}
}

// An SRV answer with more than MaxSRVTargets records has only the first
// MaxSRVTargets targets resolved.
func TestResolveSRVCapsTargets(t *testing.T) {
	const name = "_http._tcp.svc.test."
	n := dnsservers.MaxSRVTargets + 44
	f := startFakeDNS(t, srvMany(t, name, n, 0))
	got, err := resolve(t, &dnsservers.Source{Name: name, SRV: true, Network: "ip4", Server: f.addr})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != dnsservers.MaxSRVTargets {
		t.Errorf("%d servers from %d targets, want %d", len(got), n, dnsservers.MaxSRVTargets)
	}
	// One truncated SRV query over UDP, then one A query per target kept.
	if q := f.udp.Load(); q != 1+dnsservers.MaxSRVTargets {
		t.Errorf("%d UDP queries, want %d", q, 1+dnsservers.MaxSRVTargets)
	}
}

// A whole resolution is bounded by four Timeouts, however many targets
// need queries of their own.
func TestResolveSRVDeadline(t *testing.T) {
	const name = "_http._tcp.svc.test."
	const targets, delay, timeout = 40, 50 * time.Millisecond, 100 * time.Millisecond
	f := startFakeDNS(t, srvMany(t, name, targets, delay))
	_, err := resolve(t, &dnsservers.Source{Name: name, SRV: true, Network: "ip4", Server: f.addr, Timeout: timeout})
	if err == nil {
		t.Fatalf("resolved %d targets answering in %s each, beyond 4 × %s", targets, delay, timeout)
	}
	if !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("error %q does not name the resolution's bound", err)
	}
	// Each A query takes delay, so the bound (4 × timeout = 8 delays)
	// leaves room for about 8 of the 40 before giving up.
	if q := f.udp.Load() - 1; q >= targets {
		t.Errorf("%d A queries: every target was asked", q)
	}
}
