package testservers

import (
	"net"
	"testing"
	"time"
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
