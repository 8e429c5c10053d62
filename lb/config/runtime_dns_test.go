package config_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// serverTotals returns the servers of a backend by name, with the
// connections each served.
func serverTotals(t *testing.T, rt *config.Runtime, backend string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, s := range rt.Pool(backend).Stats().Servers {
		if !s.Removed {
			out[s.Name] = s.Total
		}
	}
	return out
}

func names(m map[string]uint64) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestRuntimeServersFromDNS runs a backend whose servers are a name's
// addresses in dnsmasq: traffic reaches each, a change of records adds and
// removes servers while the one that stays keeps its counters, and so do
// updates of the document that keep the pool; one that rebuilds the pool
// starts it with the servers DNS gave, so traffic does not wait for the
// next resolution.
func TestRuntimeServersFromDNS(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.30 web.test\n127.0.0.31 web.test\n", "", 0)
	web := httpServers(t, "web", nil, "127.0.0.30", "127.0.0.31", "127.0.0.32")
	port := freePort(t)
	doc := func(interval, connect int) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "timeout_connect": %d,
		    "lbkit": {"dns": {"name": "web.test", "server": %q, "interval": %d}}}],
		  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}]}`,
			web.port, connect, dns.Addr, interval, port)
	}
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, doc(100, 5000))
	a, b, c := fmt.Sprintf("127.0.0.30:%d", web.port), fmt.Sprintf("127.0.0.31:%d", web.port), fmt.Sprintf("127.0.0.32:%d", web.port)
	testutil.Eventually(t, "the servers of web.test", func() bool {
		return slices.Equal(names(serverTotals(t, rt, "web")), []string{a, b})
	})
	client := newClient(t, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	seen := map[string]int{}
	for range 4 {
		code, body, _ := get(t, client, url)
		if code != 200 {
			t.Fatalf("GET: %d %q", code, body)
		}
		seen[body]++
	}
	if seen["web 127.0.0.30"] != 2 || seen["web 127.0.0.31"] != 2 {
		t.Fatalf("4 requests reached %v, want 2 on each address", seen)
	}

	dns.WriteHosts(t, "127.0.0.30 web.test\n127.0.0.32 web.test\n")
	dns.Reload(t)
	testutil.Eventually(t, "the new servers of web.test", func() bool {
		return slices.Equal(names(serverTotals(t, rt, "web")), []string{a, c})
	})
	if n := serverTotals(t, rt, "web")[a]; n < 2 {
		t.Errorf("%s served %d after the change, want its counters kept (at least 2)", a, n)
	}
	// The source counts a change just after it updates the pool.
	testutil.Eventually(t, "DNSStats to count 2 changes and 2 servers", func() bool {
		st, ok := rt.DNSStats("web")
		return ok && st.Changes >= 2 && st.Servers == 2
	})

	// A new interval restarts the source on the same pool.
	apply(t, rt, doc(200, 5000))
	if n := serverTotals(t, rt, "web")[a]; n < 2 {
		t.Errorf("%s served %d after an update keeping the pool, want its counters kept", a, n)
	}
	// A new timeout rebuilds the pool, with the servers DNS gave.
	apply(t, rt, doc(200, 4000))
	if got := names(serverTotals(t, rt, "web")); !slices.Equal(got, []string{a, c}) {
		t.Errorf("the rebuilt pool starts with %v, want %v", got, []string{a, c})
	}
	seen = map[string]int{}
	for range 4 {
		code, body, _ := get(t, client, url)
		if code != 200 {
			t.Fatalf("GET after the rebuild: %d %q", code, body)
		}
		seen[body]++
	}
	if seen["web 127.0.0.30"] == 0 || seen["web 127.0.0.32"] == 0 {
		t.Errorf("after the rebuild requests reached %v, want both addresses", seen)
	}
}

// TestDNSValidation refuses servers named twice and malformed lbkit.dns.
func TestDNSValidation(t *testing.T) {
	for _, tc := range []struct{ dns, pool, field string }{
		{`{"name": "web.test"}`, `["127.0.0.1"]`, "lbkit.dns"},
		{`{"name": ""}`, `[]`, "lbkit.dns.name"},
		{`{"name": "web.test", "server": "127.0.0.1"}`, `[]`, "lbkit.dns.server"},
		{`{"name": "web.test", "interval": 10}`, `[]`, "lbkit.dns.interval"},
		{`{"name": "_http._tcp.web.test", "srv": true, "port": 80}`, `[]`, "lbkit.dns.port"},
		{`{"name": "web.test", "port": 70000}`, `[]`, "lbkit.dns.port"},
	} {
		_, err := config.Load([]byte(fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "b", "forward_port": 80, "pool": %s, "lbkit": {"dns": %s}}]}`, tc.pool, tc.dns)))
		var ve *config.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a ValidationError", tc.dns, err)
			continue
		}
		found := false
		for _, f := range ve.Fields {
			found = found || f.Field == tc.field
		}
		if !found {
			t.Errorf("%s with pool %s: %v, want field %s", tc.dns, tc.pool, err, tc.field)
		}
	}
	if _, err := config.Load([]byte(`{"lb": {"id": "lb"}, "backends": [{"id": "b", "forward_port": 80,
	  "lbkit": {"dns": {"name": "_http._tcp.web.test", "srv": true, "server": "127.0.0.1:53", "interval": 1000}}}]}`)); err != nil {
		t.Errorf("a valid lbkit.dns: %v", err)
	}
}
