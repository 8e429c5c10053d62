package testservers

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestServers checks Start, Stop and restart on the quick servers; the
// health package's tests run all four.
func TestServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB, ...string) *Server
	}{
		{"redis", Redis},
		{"ldap", LDAP},
		{"etcd", func(tb testing.TB, _ ...string) *Server { return Etcd(tb) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			s := tc.start(t)
			t.Logf("%s started in %v", tc.name, time.Since(t0))
			dial(t, s.Addr, true)
			t0 = time.Now()
			s.Stop(t)
			t.Logf("%s stopped in %v", tc.name, time.Since(t0))
			dial(t, s.Addr, false)
			t0 = time.Now()
			s.Start(t)
			t.Logf("%s restarted in %v", tc.name, time.Since(t0))
			dial(t, s.Addr, true)
		})
	}
}

func dial(t *testing.T, addr string, want bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	if (err == nil) != want {
		t.Fatalf("dial %s: %v, want success %v", addr, err, want)
	}
}

// TestOptional checks that a server whose binary is missing is reported,
// not skipped, and that a present one starts for the whole test.
func TestOptional(t *testing.T) {
	if testutil.InCI() {
		t.Skip("a missing binary fails under CI=true, by design")
	}
	s, reason := Optional(t, func(tb testing.TB) *Server {
		testutil.LookBinary(tb, "no-such-server-lbkit", "none")
		t.Fatal("LookBinary returned for a missing binary")
		return nil
	})
	if s != nil || !strings.Contains(reason, "no-such-server-lbkit not found") {
		t.Fatalf("missing server: %v, %q", s, reason)
	}
	if t.Skipped() {
		t.Fatal("a missing server skipped the test")
	}
	s, reason = Optional(t, func(tb testing.TB) *Server { return Redis(tb) })
	if s == nil {
		t.Skipf("redis-server: %s", reason)
	}
	dial(t, s.Addr, true)
}
