package main

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
)

// namedBackends starts an HTTP server on port P of each of the loopback
// addresses ips, the same P for all (as DNS gives one port), answering
// with its address in X-Backend. It returns P.
func namedBackends(t *testing.T, ips ...string) int {
	t.Helper()
	for range 10 { // another process may hold the port on one address
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < len(ips) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait) // after the servers' Close, registered below
		for i, ln := range lns {
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", ips[i])
				io.WriteString(w, "ok\n")
			})}
			wg.Go(func() { srv.Serve(ln) })
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatalf("no port free on all of %v", ips)
	return 0
}

// backendsOf sends n requests to the proxy at addr and counts the
// backends that answered.
func backendsOf(t *testing.T, c *http.Client, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Backend")]++
	}
	return seen
}

// lbproxy -servers-dns follows the A records of a name in dnsmasq: the
// traffic goes to the addresses DNS gives, and to the new ones after a
// change.
func TestLBProxyServersDNS(t *testing.T) {
	testutil.CheckLeaks(t)
	port := namedBackends(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n127.0.0.3 web.test\n", "", 3600)
	cfg := withFlags(t, "-servers-dns", "web.test", "-servers-port", strconv.Itoa(port),
		"-dns-server", dns.Addr, "-dns-interval", "100ms")
	addr, lines := startOut(t, cfg)
	p := strconv.Itoa(port)
	if want := "servers from DNS web.test: 127.0.0.2:" + p + ", 127.0.0.3:" + p; !slices.Contains(lines, want) {
		t.Errorf("lbproxy printed %q, want a line %q", lines, want)
	}
	for _, l := range lines {
		if strings.Contains(l, "demo backends") {
			t.Errorf("lbproxy printed %q: want no demo backend with -servers-dns", l)
		}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	if seen := backendsOf(t, c, addr, 6); seen["127.0.0.2"] != 3 || seen["127.0.0.3"] != 3 {
		t.Fatalf("spread %v, want 3 each on 127.0.0.2 and 127.0.0.3", seen)
	}

	dns.WriteHosts(t, "127.0.0.3 web.test\n127.0.0.4 web.test\n")
	dns.Reload(t)
	testutil.Eventually(t, "traffic on the new addresses", func() bool {
		seen := backendsOf(t, c, addr, 4)
		return seen["127.0.0.3"] == 2 && seen["127.0.0.4"] == 2
	})
}

// lbproxy -servers-srv takes ports and priorities from SRV records: the
// higher priority's server is a backup, idle while the other is up.
func TestLBProxyServersSRV(t *testing.T) {
	testutil.CheckLeaks(t)
	port := namedBackends(t, "127.0.0.2", "127.0.0.3")
	p := strconv.Itoa(port)
	dns := testservers.Dnsmasq(t, "127.0.0.2 a.test\n127.0.0.3 b.test\n",
		"srv-host=_http._tcp.web.test,a.test,"+p+",10,1\nsrv-host=_http._tcp.web.test,b.test,"+p+",20,1\n", 3600)
	cfg := withFlags(t, "-servers-srv", "_http._tcp.web.test", "-dns-server", dns.Addr)
	addr, lines := startOut(t, cfg)
	if want := "servers from DNS _http._tcp.web.test: 127.0.0.2:" + p + ", 127.0.0.3:" + p + " (backup)"; !slices.Contains(lines, want) {
		t.Errorf("lbproxy printed %q, want a line %q", lines, want)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	if seen := backendsOf(t, c, addr, 4); seen["127.0.0.2"] != 4 {
		t.Fatalf("spread %v, want all 4 on 127.0.0.2 (127.0.0.3 is a backup)", seen)
	}
}

func TestLBProxyServersDNSDefaults(t *testing.T) {
	cfg := defaultConfig()
	if cfg.serversDNS != "" || cfg.serversSRV != "" || cfg.serversPort != 0 || cfg.dnsServer != "" || cfg.dnsInterval != 30*time.Second {
		t.Errorf("DNS defaults %q %q %d %q %v, want none and a 30s interval", cfg.serversDNS, cfg.serversSRV, cfg.serversPort, cfg.dnsServer, cfg.dnsInterval)
	}
}

func TestLBProxyServersDNSRejectsBadConfig(t *testing.T) {
	dns := testservers.Dnsmasq(t, "127.0.0.2 web.test\n", "", 60)
	for _, tt := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-servers-dns", "web.test:80", "-backends", "127.0.0.1:1"}, "choose one"},
		{[]string{"-servers-dns", "web.test:80", "-servers-srv", "_http._tcp.web.test"}, "choose one"},
		{[]string{"-servers-dns", "web.test"}, "needs a port"},
		{[]string{"-servers-dns", "web.test:0"}, "bad port"},
		{[]string{"-servers-dns", "web.test:80", "-servers-port", "81"}, "two ports"},
		{[]string{"-servers-srv", "_http._tcp.web.test", "-servers-port", "81"}, "SRV records carry"},
		{[]string{"-servers-port", "80", "-backends", "127.0.0.1:1"}, "needs -servers-dns"},
		{[]string{"-dns-server", dns.Addr, "-backends", "127.0.0.1:1"}, "needs -servers-dns"},
		{[]string{"-servers-dns", "web.test:80", "-dns-interval", "0s"}, "must be positive"},
		{[]string{"-servers-dns", "web..test:80", "-dns-server", dns.Addr}, "not a DNS name"},
		{[]string{"-servers-dns", "web.test:80", "-dns-server", "nohostport"}, "nohostport"},
		{[]string{"-servers-dns", "nope.test:80", "-dns-server", dns.Addr}, "name not found"},
	} {
		err := refused(t, withFlags(t, tt.args...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: run = %v, want an error about %q", tt.args, err, tt.want)
		}
	}
}
