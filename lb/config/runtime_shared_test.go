package config_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// newRuntimeOn returns a runtime on ip, closed at cleanup: several of them
// run the same document side by side, as instances of one load balancer.
func newRuntimeOn(t *testing.T, ip string, opts config.RuntimeOptions) *config.Runtime {
	t.Helper()
	opts.IPs = []netip.Addr{netip.MustParseAddr(ip)}
	if opts.DrainGrace == 0 {
		opts.DrainGrace = 2 * time.Second
	}
	rt := config.NewRuntime(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Close(ctx)
	})
	return rt
}

// resumes dials addr over TLS with cfg, reads the server's greeting (and
// so the session ticket sent before it) and reports whether the session
// was resumed.
func resumes(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatalf("greeting through %s: %v", addr, err)
	}
	return c.ConnectionState().DidResume
}

// TestRuntimeTicketsAcrossInstances resumes on a second runtime a TLS
// session begun on a first one running the same document: the keys come
// from session_ticket_secret, not from the process. A runtime with
// another secret does not resume it.
func TestRuntimeTicketsAcrossInstances(t *testing.T) {
	ca := testutil.NewCA(t)
	tcp := tcpServers(t, "tcp", nil, "127.0.0.20")
	port := freePortOn(t, "127.0.0.21", "127.0.0.22", "127.0.0.23")
	doc := func(secret string) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "tcp", "forward_port": %d, "pool": ["127.0.0.20"]}],
		  "frontends": [{"id": "tls", "inbound_port": %d, "backend_id": "tcp", "certificate_ids": ["c"]}],
		  "certificates": [{"id": "c", "type": "custom", "certificate_chain": %s}],
		  "secrets": {"session_ticket_secret": %q}}`,
			tcp.port, port, jsonString(chainPEM(t, ca.Leaf(t, "tickets.test"))), secret)
	}
	shared := strings.Repeat("s", 32)
	a := newRuntimeOn(t, "127.0.0.21", config.RuntimeOptions{})
	b := newRuntimeOn(t, "127.0.0.22", config.RuntimeOptions{})
	other := newRuntimeOn(t, "127.0.0.23", config.RuntimeOptions{})
	apply(t, a, doc(shared))
	apply(t, b, doc(shared))
	apply(t, other, doc(strings.Repeat("o", 32)))

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := ca.ClientConfig("tickets.test")
		cfg.MinVersion, cfg.MaxVersion = version, version
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		if resumes(t, fmt.Sprintf("127.0.0.21:%d", port), cfg) {
			t.Fatalf("TLS %x: the first connection resumed", version)
		}
		if !resumes(t, fmt.Sprintf("127.0.0.22:%d", port), cfg) {
			t.Errorf("TLS %x: the second instance did not resume the first one's session", version)
		}
		fresh := ca.ClientConfig("tickets.test")
		fresh.MinVersion, fresh.MaxVersion = version, version
		fresh.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		resumes(t, fmt.Sprintf("127.0.0.21:%d", port), fresh)
		if resumes(t, fmt.Sprintf("127.0.0.23:%d", port), fresh) {
			t.Errorf("TLS %x: an instance with another secret resumed the session", version)
		}
	}
}

// freePortOn returns a TCP port free on each of ips, for runtimes that
// run one document on several addresses.
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	s := listenSame(t, ips...)
	for _, ln := range s.lns {
		ln.Close()
	}
	return s.port
}
