package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
)

// writeDoc writes a configuration document to a file of the test.
func writeDoc(t *testing.T, doc string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startConfigArgs runs lbproxy with args (-config among them) until the
// test ends, and returns the addresses its frontends listen on.
func startConfigArgs(t *testing.T, args ...string) []string {
	t.Helper()
	cfg := withFlags(t, append([]string{"-grace", "1s"}, args...)...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	var addrs []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "lbproxy: frontend "); ok {
			addrs = append(addrs, a[strings.LastIndex(a, " ")+1:])
			if !strings.Contains(line, "frontend f ") { // one frontend, "f", in these documents
				continue
			}
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			return addrs
		}
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-done)
	return nil
}

// tcpDoc is a document with one TCP frontend "f" on port in front of
// servers on ips at serverPort, with extra backend fields.
func tcpDoc(port, serverPort int, extra string, ips ...string) string {
	return fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": %d, "pool": ["%s"]%s}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b"}]}`,
		serverPort, strings.Join(ips, `","`), extra, port)
}

// TestConfigRefusesDataPathFlags checks that -config refuses the flags of
// flag mode's frontend and pool as a usage error, and keeps those that
// apply to it; each refused name is a flag of lbproxy.
func TestConfigRefusesDataPathFlags(t *testing.T) {
	fs := flag.NewFlagSet("lbproxy", flag.ContinueOnError)
	newConfig(fs)
	for _, name := range dataPathFlags {
		if fs.Lookup(name) == nil {
			t.Errorf("-%s is not a flag of lbproxy", name)
		}
	}
	file := writeDoc(t, tcpDoc(testutil.FreePort(t), 9, "", "127.0.0.1"))
	for _, args := range [][]string{
		{"-mode", "tcp"},
		{"-listen", "127.0.0.1:0", "-backends", "127.0.0.1:1"},
		{"-sticky", "table"},
		{"-client-rate", "5"},
		{"-http3"},
	} {
		cfg := withFlags(t, append([]string{"-config", file}, args...)...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, cfg, io.Discard)
		cancel()
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("-config with %v: %v, want a usage error naming %s", args, err, args[0])
		}
	}
	// Flags that apply in -config mode are taken.
	addrs := startConfigArgs(t, "-config", file, "-ip", "127.0.0.1", "-v", "-gc-percent", "100",
		"-admin", "127.0.0.1:0", "-access-log", "json", "-backend-ca", testutil.NewCA(t).WriteCAFile(t))
	if len(addrs) != 1 {
		t.Errorf("frontends on %v, want one", addrs)
	}
}

// TestConfigUsageExitStatus checks that lbproxy exits with status 2, as
// for a flag it does not know, on a data-path flag given with -config.
func TestConfigUsageExitStatus(t *testing.T) {
	if args := os.Getenv("LBPROXY_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"lbproxy"}, strings.Split(args, "\n")...)
		main()
		return
	}
	file := writeDoc(t, tcpDoc(testutil.FreePort(t), 9, "", "127.0.0.1"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestConfigUsageExitStatus$")
	cmd.Env = append(os.Environ(), "LBPROXY_TEST_MAIN_ARGS="+strings.Join([]string{"-config", file, "-mode", "tcp"}, "\n"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "-mode") {
		t.Fatalf("lbproxy -config FILE -mode tcp: %v, stderr %q; want exit status 2 naming -mode", err, stderr.String())
	}
}

// TestConfigFreebind checks that -freebind makes the frontends of -config
// listen on an address this host does not hold, which fails without it.
func TestConfigFreebind(t *testing.T) {
	if !freebindSupported {
		t.Skip("IP_FREEBIND is Linux's")
	}
	file := writeDoc(t, tcpDoc(testutil.FreePort(t), 9, "", "127.0.0.1"))
	cfg := withFlags(t, "-config", file, "-ip", notHeldAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "assign") {
		t.Fatalf("without -freebind on %s: %v, want the address refused", notHeldAddr, err)
	}
	addrs := startConfigArgs(t, "-config", file, "-ip", notHeldAddr, "-freebind")
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], notHeldAddr+":") {
		t.Fatalf("frontends on %v, want one on %s", addrs, notHeldAddr)
	}
}

// notHeldAddr is an address of TEST-NET-1 (RFC 5737), which no interface
// of the test machine holds.
const notHeldAddr = "192.0.2.1"

// TestConfigRedisStickyTable runs two lbproxy -config instances, on
// 127.0.7.2 and 127.0.7.3, with the same document and one Redis: a
// backend with sticky_sessions table sends each client, by source IP, to
// the same server through both, though B meets the clients in the
// reverse order (its round robin alone would send most elsewhere).
func TestConfigRedisStickyTable(t *testing.T) {
	rs := testservers.Redis(t)
	ips := []string{"127.0.6.1", "127.0.6.2", "127.0.6.3"}
	serverPort := sameportServers(t, "s", false, ips...)
	port := freePortOn(t, "127.0.7.2", "127.0.7.3")
	file := writeDoc(t, tcpDoc(port, serverPort, `, "sticky_sessions": "table"`, ips...))
	instance := func(ip string) string {
		addrs := startConfigArgs(t, "-config", file, "-ip", ip, "-redis", rs.Addr, "-redis-prefix", "cfgtest:",
			"-redis-timeout", "2s") // a loaded machine does not fall back
		return addrs[0]
	}
	a, b := instance("127.0.7.2"), instance("127.0.7.3")
	rc := redisClient(t, rs.Addr)
	srcs := []string{"127.0.6.11", "127.0.6.12", "127.0.6.13", "127.0.6.14", "127.0.6.15"}
	home := map[string]string{}
	seen := map[string]bool{}
	for _, src := range srcs {
		home[src] = nameFrom(t, src, a)
		seen[home[src]] = true
	}
	if len(seen) != 3 {
		t.Fatalf("A spread the clients over %v, want three servers", seen)
	}
	for _, src := range srcs {
		testutil.Eventually(t, "the binding of "+src+" in Redis", func() bool {
			n, _ := rc.Exists(context.Background(), "cfgtest:backend:b:sticky:"+src).Result()
			return n == 1
		})
	}
	for _, src := range slices.Backward(srcs) {
		if got := nameFrom(t, src, b); got != home[src] {
			t.Errorf("%s went to %q through B, to %q through A", src, got, home[src])
		}
	}
}

// TestConfigRedisClientRate runs three lbproxy -config instances with one
// document whose frontend has an lbkit client_rate, and one Redis: a
// client sending to all of them gets the rate once, not three times.
func TestConfigRedisClientRate(t *testing.T) {
	rs := testservers.Redis(t)
	serverPort := sameportServers(t, "s", true, "127.0.6.21")
	const ratePerSec, burst, reqs = 5, 5, 45
	file := writeDoc(t, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.6.21"]}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "b",
	    "lbkit": {"client_rate": %d, "client_burst": %d}}]}`, serverPort, freePortOn(t, "127.0.7.4", "127.0.7.5", "127.0.7.6"), ratePerSec, burst))
	var urls []string
	for _, ip := range []string{"127.0.7.4", "127.0.7.5", "127.0.7.6"} {
		addrs := startConfigArgs(t, "-config", file, "-ip", ip, "-redis", rs.Addr, "-redis-instances", "3",
			"-redis-timeout", "2s")
		urls = append(urls, "http://"+addrs[0]+"/")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.6.31")}}).DialContext}}
	defer c.CloseIdleConnections()
	ok := 0
	start := time.Now()
	for i := range reqs {
		resp, err := c.Get(urls[i%3])
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	bound := burst + int(ratePerSec*elapsed.Seconds()) + 1
	if 3*bound > reqs {
		t.Skipf("%d requests took %v: too slow to tell one shared rate from three", reqs, elapsed)
	}
	if ok < burst || ok > bound {
		t.Fatalf("%d of %d requests over three instances passed in %v; want between %d and %d", ok, reqs, elapsed, burst, bound)
	}
}

// freePortOn returns a TCP port free on each of ips, for instances that
// run one document on several addresses.
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == len(ips) {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}
