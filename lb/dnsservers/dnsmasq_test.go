package dnsservers_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/dnsservers"
)

// These tests resolve through dnsmasq (scripts/deps/dns.sh installs it),
// started on loopback with names under "test." from its hosts file and
// SRV records from its configuration file.

func status(pool *lb.Pool, name string) (lb.ServerStatus, bool) {
	for _, st := range pool.Status() {
		if st.Name == name {
			return st, true
		}
	}
	return lb.ServerStatus{}, false
}

// The pool follows a change of A records within one interval, and the
// servers that stay keep their state: maintenance set by the operator,
// connections in flight, counters; a server that left still drains.
func TestDnsmasqFollowsAddresses(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n127.0.0.3 web.test\n127.0.0.4 web.test\n::1 web.test\n", "", 3600)
	src := &dnsservers.Source{Name: "web.test", Port: 80, Server: dns.Addr,
		Interval: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond}
	pool := &lb.Pool{Name: "web"}
	runSource(t, src, pool)
	first := []string{"127.0.0.2:80", "127.0.0.3:80", "127.0.0.4:80", "[::1]:80"}
	testutil.Eventually(t, "the servers of web.test", func() bool { return slices.Equal(poolAddrs(pool), first) })
	if st := src.Stats(); st.TTL != time.Hour || st.Servers != 4 {
		t.Fatalf("stats %+v: want dnsmasq's TTL of 1h and 4 servers", st)
	}

	// State to keep: 127.0.0.3 in maintenance, a connection open on each
	// of the others (round robin over the three pickable ones).
	if !pool.SetState("127.0.0.3:80", lb.StateMaintenance, "upgrade") {
		t.Fatal("SetState found no 127.0.0.3:80")
	}
	var leases []lb.Lease
	t.Cleanup(func() {
		for _, l := range leases {
			l.Done(lb.Outcome{})
		}
	})
	for range 3 {
		l, err := pool.Acquire(t.Context(), lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for _, name := range []string{"127.0.0.2:80", "127.0.0.4:80", "[::1]:80"} {
		if st, _ := status(pool, name); st.Active != 1 || st.Total != 1 {
			t.Fatalf("%s: %d active, %d in all; want 1 and 1 before the change", name, st.Active, st.Total)
		}
	}

	before := src.Stats().Resolutions
	dns.WriteHosts(t, "127.0.0.3 web.test\n127.0.0.2 web.test\n127.0.0.5 web.test\n::1 web.test\n")
	dns.Reload(t)
	next := []string{"127.0.0.2:80", "127.0.0.3:80", "127.0.0.5:80", "[::1]:80"}
	testutil.Eventually(t, "the new servers of web.test", func() bool { return slices.Equal(poolAddrs(pool), next) })
	// One resolution may have been under way when dnsmasq reloaded; the
	// next one saw the change.
	if n := src.Stats().Resolutions - before; n > 2 {
		t.Errorf("the change took %d resolutions, want at most 2", n)
	}
	if st, _ := status(pool, "127.0.0.3:80"); st.State != lb.StateMaintenance || st.Reason != "upgrade" {
		t.Errorf("127.0.0.3:80 is %v (%q) after the change, want its maintenance kept", st.State, st.Reason)
	}
	for _, name := range []string{"127.0.0.2:80", "[::1]:80"} {
		if st, _ := status(pool, name); st.Active != 1 || st.Total != 1 || st.Removed {
			t.Errorf("%s after the change: %+v, want its connection and count kept", name, st)
		}
	}
	if st, _ := status(pool, "127.0.0.5:80"); st.State != lb.StateUp || st.Total != 0 {
		t.Errorf("127.0.0.5:80 after the change: %+v, want a new server, up", st)
	}
	if st, ok := status(pool, "127.0.0.4:80"); !ok || !st.Removed || st.Active != 1 {
		t.Errorf("127.0.0.4:80 after the change: %+v, want removed and draining its connection", st)
	}
}

// A TTL shorter than the interval makes the next resolution come sooner:
// with an interval of an hour, a TTL of 1 s follows a change in seconds.
func TestDnsmasqHonoursTTL(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n", "", 1)
	src := &dnsservers.Source{Name: "web.test", Port: 80, Server: dns.Addr, Network: "ip4",
		Interval: time.Hour, MinInterval: 100 * time.Millisecond}
	pool := &lb.Pool{Name: "web"}
	runSource(t, src, pool)
	testutil.Eventually(t, "the servers of web.test", func() bool { return slices.Equal(poolAddrs(pool), []string{"127.0.0.2:80"}) })
	dns.WriteHosts(t, "127.0.0.3 web.test\n")
	dns.Reload(t)
	testutil.Eventually(t, "the change, by TTL", func() bool { return slices.Equal(poolAddrs(pool), []string{"127.0.0.3:80"}) })
	if st := src.Stats(); st.TTL != time.Second || st.Failures != 0 {
		t.Fatalf("stats %+v: want a TTL of 1s and no failure", st)
	}
}

// SRV records give each server its port and weight; the lowest priority
// is regular, higher ones are backups. A change of the records (dnsmasq
// restarted with another configuration) keeps the state of what stays.
func TestDnsmasqSRV(t *testing.T) {
	const hosts = "127.0.0.2 a.test\n127.0.0.3 b.test\n127.0.0.4 c.test\n"
	dns := testservers.Dnsmasq(t, hosts,
		"srv-host=_http._tcp.svc.test,a.test,8001,10,5\n"+
			"srv-host=_http._tcp.svc.test,b.test,8002,10,1\n"+
			"srv-host=_http._tcp.svc.test,c.test,8003,20,3\n", 3600)
	src := &dnsservers.Source{Name: "_http._tcp.svc.test", SRV: true, Server: dns.Addr, Network: "ip4",
		Interval: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond}
	got, err := resolve(t, src)
	if err != nil {
		t.Fatal(err)
	}
	first := []string{"127.0.0.2:8001+5", "127.0.0.3:8002+1", "127.0.0.4:8003+3(backup)"}
	if !slices.Equal(addrs(got), first) {
		t.Fatalf("servers %v, want %v", addrs(got), first)
	}

	pool := &lb.Pool{Name: "svc"}
	runSource(t, src, pool)
	testutil.Eventually(t, "the SRV servers", func() bool { return slices.Equal(poolAddrs(pool), first) })
	if snap := pool.Snapshot(); snap.Backup || len(snap.Servers) != 2 {
		t.Fatalf("snapshot of %d servers (backup %v), want the 2 regular ones", len(snap.Servers), snap.Backup)
	}
	pool.SetState("127.0.0.3:8002", lb.StateDown, "check failed")

	dns.Stop(t)
	dns.WriteConf(t, "srv-host=_http._tcp.svc.test,b.test,8002,10,4\n"+
		"srv-host=_http._tcp.svc.test,c.test,8003,10,3\n")
	dns.Start(t)
	next := []string{"127.0.0.3:8002+4", "127.0.0.4:8003+3"}
	testutil.Eventually(t, "the new SRV servers", func() bool { return slices.Equal(poolAddrs(pool), next) })
	if st, _ := status(pool, "127.0.0.3:8002"); st.State != lb.StateDown || st.Reason != "check failed" {
		t.Errorf("127.0.0.3:8002 is %v (%q), want its state kept", st.State, st.Reason)
	}
}

// With dnsmasq stopped, resolutions fail: the pool keeps its servers and
// the failures are counted. Once it is back, the pool follows again.
func TestDnsmasqDown(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n127.0.0.3 web.test\n", "", 3600)
	src := &dnsservers.Source{Name: "web.test", Port: 80, Server: dns.Addr, Network: "ip4",
		Interval: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond}
	pool := &lb.Pool{Name: "web"}
	runSource(t, src, pool)
	want := []string{"127.0.0.2:80", "127.0.0.3:80"}
	testutil.Eventually(t, "the servers of web.test", func() bool { return slices.Equal(poolAddrs(pool), want) })

	dns.Stop(t)
	before := src.Stats().Failures
	testutil.Eventually(t, "failed resolutions", func() bool { return src.Stats().Failures >= before+2 })
	if got := poolAddrs(pool); !slices.Equal(got, want) {
		t.Fatalf("with DNS down the pool has %v, want the last good %v", got, want)
	}
	st := src.Stats()
	if st.LastError == nil || st.Changes != 1 {
		t.Fatalf("stats %+v: want a last error and 1 change", st)
	}
	t.Logf("error with dnsmasq down: %v", st.LastError)

	dns.WriteHosts(t, "127.0.0.4 web.test\n")
	dns.Start(t)
	testutil.Eventually(t, "the servers after the restart", func() bool { return slices.Equal(poolAddrs(pool), []string{"127.0.0.4:80"}) })
}

// An unknown name is NXDOMAIN; dnsmasq's refusal of a name outside its
// domain is a server failure.
func TestDnsmasqErrors(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n", "", 60)
	for _, tc := range []struct {
		name string
		want error
	}{
		{"nope.test", dnsservers.ErrNotFound},
		{"web.example", dnsservers.ErrServerFailure},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := (&dnsservers.Source{Name: tc.name, Port: 80, Server: dns.Addr}).Resolve(ctx)
		cancel()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}
