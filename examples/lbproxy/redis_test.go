package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
)

// nameFrom connects to addr from the loopback address src and returns the
// server's greeting.
func nameFrom(t *testing.T, src, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("from %s: %v", src, err)
	}
	return strings.TrimSpace(line)
}

func redisClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLBProxyRedisStickyTable runs two lbproxy instances sharing a Redis:
// clients pinned through A (round robin) land on the same servers through
// B, whose own algorithm would send them all to its first server.
func TestLBProxyRedisStickyTable(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	backends := testutil.NameServer(t, "a").Addr + "," + testutil.NameServer(t, "b").Addr + "," + testutil.NameServer(t, "c").Addr
	instance := func(algorithm string) string {
		cfg := withFlags(t, "-mode", "tcp", "-backends", backends, "-algorithm", algorithm,
			"-sticky", "table", "-redis", rs.Addr, "-redis-prefix", "test:",
			"-redis-timeout", "2s") // a loaded machine does not fall back
		return start(t, cfg)
	}
	a, b := instance("roundrobin"), instance("first")
	rc := redisClient(t, rs.Addr)
	srcs := []string{"127.0.5.1", "127.0.5.2", "127.0.5.3", "127.0.5.4", "127.0.5.5", "127.0.5.6"}
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
			n, _ := rc.Exists(context.Background(), "test:sticky:"+src).Result()
			return n == 1
		})
		if got := nameFrom(t, src, b); got != home[src] {
			t.Fatalf("%s went to %s through B, to %s through A", src, got, home[src])
		}
	}
}

// TestLBProxyRedisClientRate runs three lbproxy instances sharing
// -client-rate through Redis: one client sending to all of them gets the
// rate once, not three times.
func TestLBProxyRedisClientRate(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	backend := testutil.HTTPBackend(t, "a")
	const ratePerSec, burst, reqs = 5, 5, 45
	var urls []string
	for range 3 {
		cfg := withFlags(t, "-backends", backend.Addr, "-client-rate", "5", "-client-rate-burst", "5",
			"-redis", rs.Addr, "-redis-instances", "3", "-redis-timeout", "2s")
		urls = append(urls, "http://"+start(t, cfg)+"/")
	}
	c := &http.Client{Timeout: 5 * time.Second}
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

// TestLBProxyTicketKeyFile runs two https instances with the same
// -ticket-key-file: a session begun on one resumes on the other; a third
// with another file does not resume it.
func TestLBProxyTicketKeyFile(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "localhost", "127.0.0.1"))
	backend := testutil.HTTPBackend(t, "a")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shared := write("shared", "a secret the fleet shares, 32+ bytes\n")
	other := write("other", "another secret, also long enough\n")
	instance := func(keyFile2 string) string {
		return start(t, withFlags(t, "-mode", "https", "-backends", backend.Addr, "-cert", certFile, "-key", keyFile,
			"-ticket-key-file", keyFile2))
	}
	a, b, c := instance(shared), instance(shared), instance(other)
	resumed := func(addr string, cfg *tls.Config) bool {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		io.Copy(io.Discard, conn) // takes in the TLS 1.3 tickets too
		return conn.ConnectionState().DidResume
	}
	client := func() *tls.Config {
		cfg := ca.ClientConfig("localhost")
		cfg.NextProtos = []string{"http/1.1"}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		return cfg
	}
	cfg := client()
	if resumed(a, cfg) {
		t.Fatal("first handshake resumed")
	}
	if !resumed(b, cfg) {
		t.Fatal("session from A did not resume on B, which has the same -ticket-key-file")
	}
	cfg = client()
	resumed(a, cfg)
	if resumed(c, cfg) {
		t.Fatal("session from A resumed on C, which has another -ticket-key-file")
	}
}

// TestLBProxyRedisFlags checks the command lines lbproxy refuses.
func TestLBProxyRedisFlags(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long")
	if err := os.WriteFile(long, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-redis", "127.0.0.1:6379"}, "-redis shares"},
		{[]string{"-redis", "nohostport", "-sticky", "table"}, "-redis"},
		{[]string{"-redis-password-file", long}, "without -redis"},
		{[]string{"-redis-instances", "3"}, "without -redis"},
		{[]string{"-redis-timeout", "1s"}, "without -redis"},
		{[]string{"-redis", "127.0.0.1:6379", "-sticky", "table", "-redis-timeout", "0s"}, "must be positive"},
		{[]string{"-redis", "127.0.0.1:6379", "-client-rate", "5", "-redis-instances", "0"}, "at least 1"},
		{[]string{"-ticket-key-file", long}, "TLS-terminating mode"},
		{[]string{"-mode", "https", "-ticket-key-file", short}, "at least 16"},
		{[]string{"-cookie-secret-file", long}, "needs -sticky cookie"},
		{[]string{"-sticky", "cookie", "-cookie-secret-file", short}, "at least 16"},
		{[]string{"-sticky", "cookie", "-cookie-secret-file", long, "-sticky-secret", strings.Repeat("0f", 16)}, "choose one"},
	} {
		err := refused(t, withFlags(t, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// metricValue returns the value of the series named series (with its
// labels) in a Prometheus exposition, -1 when absent.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for line := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// TestLBProxyRedisDown stops the Redis of -sticky table: connections keep
// flowing, pinned locally, the fallbacks rise in /metrics, and once Redis
// is back the bindings reach it again.
func TestLBProxyRedisDown(t *testing.T) {
	testutil.CheckLeaks(t)
	rs := testservers.Redis(t)
	backends := testutil.NameServer(t, "a").Addr + "," + testutil.NameServer(t, "b").Addr
	r := startAdminRun(t, withFlags(t, "-mode", "tcp", "-backends", backends,
		"-sticky", "table", "-redis", rs.Addr, "-redis-prefix", "down:",
		"-redis-timeout", "2s")) // a stopped Redis refuses at once
	fallbacks := func() float64 {
		_, body := adminGet(t, r.admin+"/metrics", "")
		return metricValue(t, body, `lbkit_shared_fallbacks_total{shared="sticky"}`)
	}
	nameFrom(t, "127.0.6.1", r.addr)
	if got := fallbacks(); got != 0 {
		t.Fatalf("fallbacks with Redis up = %v, want 0", got)
	}

	rs.Stop(t)
	home := map[string]string{}
	for _, src := range []string{"127.0.6.2", "127.0.6.3", "127.0.6.4"} {
		home[src] = nameFrom(t, src, r.addr)
		if again := nameFrom(t, src, r.addr); again != home[src] {
			t.Fatalf("with Redis down, %s went to %s then %s", src, home[src], again)
		}
	}
	if got := fallbacks(); got < 1 {
		t.Fatalf("fallbacks with Redis down = %v, want some", got)
	}

	rs.Start(t)
	rc := redisClient(t, rs.Addr)
	for src, name := range home {
		testutil.Eventually(t, "the binding of "+src+" in Redis", func() bool {
			if got := nameFrom(t, src, r.addr); got != name {
				t.Fatalf("after the restart, %s went to %s, pinned to %s", src, got, name)
			}
			n, _ := rc.Exists(context.Background(), "down:sticky:"+src).Result()
			return n == 1
		})
	}
}
