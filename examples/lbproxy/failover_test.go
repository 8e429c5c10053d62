package main

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestLBProxyFailoverHost checks that once its only server is down,
// lbproxy -failover-host forwards requests to the failover host with the
// failover host's name as Host.
func TestLBProxyFailoverHost(t *testing.T) {
	testutil.CheckLeaks(t)
	a, site := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "site")
	cfg := withFlags(t, "-health", "http:/", "-health-interval", "100ms", "-failover-host", site.Addr)
	cfg.backends = a.Addr
	addr := start(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	backend := func() string {
		resp, err := c.Get("http://" + addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Backend")
	}
	if got := backend(); got != "a" {
		t.Fatalf("with a up: answered by %q", got)
	}
	a.Close()
	testutil.Eventually(t, "the failover host to answer", func() bool { return backend() == "site" })
	if r, ok := site.LastRequest(); !ok || r.Host != site.Addr || r.URI != "/x" {
		t.Errorf("the failover host got %+v", r)
	}
}

func TestLBProxyFailoverHostNeedsHTTP(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "tcp", "-failover-host", "127.0.0.1:8081"},
		{"-failover-host", "ftp://x"},
		{"-failover-host", "http://x/path"},
	} {
		if err := refused(t, withFlags(t, args...)); err == nil || !strings.Contains(err.Error(), "failover") {
			t.Errorf("%v: %v, want a failover host error", args, err)
		}
	}
}

// TestLBProxyRedispatchEvery checks that -redispatch-every 3 keeps a
// request's first retries on the server that failed: with -retries 5 over
// three refusing servers, two of them take three attempts each.
func TestLBProxyRedispatchEvery(t *testing.T) {
	testutil.CheckLeaks(t)
	cfg := withFlags(t, "-retries", "5", "-redispatch-every", "3")
	cfg.backends = testutil.ClosedAddr(t) + "," + testutil.ClosedAddr(t) + "," + testutil.ClosedAddr(t)
	r := startAdminRun(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + r.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	doc := waitStats(t, r, func(d statsDoc) bool { return d.Backends[0].Retries == 5 })
	var got []uint64
	for _, s := range doc.Backends[0].Servers {
		got = append(got, s.ConnectErrors)
	}
	slices.Sort(got)
	if !slices.Equal(got, []uint64{0, 3, 3}) || doc.Backends[0].Redispatches != 1 {
		t.Errorf("attempts per server %v, %d redispatches; want [0 3 3], 1", got, doc.Backends[0].Redispatches)
	}
}
