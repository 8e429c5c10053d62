package main

import (
	"io"
	"net/http"
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
