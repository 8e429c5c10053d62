package health_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
)

func check(p health.Probe, addr string) error {
	return checkWithin(p, addr, time.Second)
}

func checkWithin(p health.Probe, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Check(ctx, health.Target{Addr: addr})
}

// TestProbesRealServers runs every probe against the real server of its
// protocol: up while it runs, down with a readable reason once it is
// stopped, up again after a restart. Each server is started once; a case
// whose server is missing skips alone (and fails under CI=true).
func TestProbesRealServers(t *testing.T) {
	testutil.CheckLeaks(t)
	web := testutil.HTTPBackend(t, "web")
	type server interface {
		Stop(testing.TB)
		Start(testing.TB)
	}
	servers := map[string]server{
		"web": restartable{stop: func(testing.TB) { web.Close() }, start: func(testing.TB) { web.Restart(t) }},
	}
	addrs := map[string]string{"web": web.Addr}
	missing := map[string]string{}
	for _, s := range []struct {
		name  string
		start func(testing.TB) *testservers.Server
	}{
		{"redis", func(tb testing.TB) *testservers.Server { return testservers.Redis(tb) }},
		{"ldap", func(tb testing.TB) *testservers.Server { return testservers.LDAP(tb) }},
		{"pgsql", testservers.PostgreSQL},
		{"mysql", testservers.MariaDB},
	} {
		srv, reason := testservers.Optional(t, s.start)
		if srv == nil {
			missing[s.name] = reason
			continue
		}
		servers[s.name], addrs[s.name] = srv, srv.Addr
	}
	// need skips t unless every named server runs.
	need := func(t *testing.T, names ...string) {
		t.Helper()
		for _, n := range names {
			if reason, ok := missing[n]; ok {
				t.Skipf("%s: %s", n, reason)
			}
		}
	}

	for _, tc := range []struct {
		name  string
		probe health.Probe
		srv   string
	}{
		{"tcp", health.TCP{}, "redis"},
		{"tcp send/expect", health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")}, "redis"},
		{"http", health.HTTP{Path: "/", Body: "web"}, "web"},
		{"redis", health.Redis{}, "redis"},
		{"ldap", health.LDAP{}, "ldap"},
		{"pgsql", health.PostgreSQL{User: testservers.PGUser}, "pgsql"},
		{"pgsql unknown user", health.PostgreSQL{User: "nobody-here"}, "pgsql"},
		{"mysql greeting", health.MySQL{}, "mysql"},
		{"mysql login", health.MySQL{User: testservers.MySQLUser}, "mysql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			need(t, tc.srv)
			addr := addrs[tc.srv]
			if err := check(tc.probe, addr); err != nil {
				t.Fatalf("running server: %v", err)
			}
			servers[tc.srv].Stop(t)
			err := check(tc.probe, addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("stopped server: %v, want a refused connection", err)
			}
			t.Logf("reason: %v", err)
			servers[tc.srv].Start(t)
			if err := check(tc.probe, addr); err != nil {
				t.Fatalf("restarted server: %v", err)
			}
		})
	}

	// A probe never reports another protocol as up: each reply is read as
	// far as it tells the protocol apart, and the reason says how.
	for _, tc := range []struct {
		name  string
		probe health.Probe
		srv   string
		is    error  // the kind of error
		want  string // in the reason
	}{
		{"redis vs pgsql", health.Redis{}, "pgsql", io.EOF, "connection closed by server"},
		{"redis vs http", health.Redis{}, "web", health.ErrUnexpected, "not a Redis reply"},
		{"redis vs mysql", health.Redis{}, "mysql", health.ErrUnexpected, "not a Redis reply"},
		{"mysql vs http", health.MySQL{}, "web", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"mysql vs redis", health.MySQL{}, "redis", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"mysql vs pgsql", health.MySQL{User: "check"}, "pgsql", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"pgsql vs redis", health.PostgreSQL{}, "redis", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"pgsql vs http", health.PostgreSQL{}, "web", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"pgsql vs mysql", health.PostgreSQL{}, "mysql", health.ErrUnexpected, "not a PostgreSQL reply"},
		{"pgsql vs ldap", health.PostgreSQL{}, "ldap", io.EOF, "connection closed by server"},
		{"ldap vs redis", health.LDAP{}, "redis", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"ldap vs http", health.LDAP{}, "web", os.ErrDeadlineExceeded, "no reply before the timeout"},
		{"ldap vs mysql", health.LDAP{}, "mysql", health.ErrUnexpected, "not an LDAP message"},
		{"http vs redis", health.HTTP{}, "redis", io.EOF, "connection closed by server"},
		{"http vs mysql", health.HTTP{}, "mysql", health.ErrUnexpected, "not an HTTP response"},
		{"http vs ldap", health.HTTP{}, "ldap", io.EOF, "connection closed by server"},
		{"tcp expect vs http", health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")}, "web", health.ErrUnexpected, "unexpected reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			need(t, tc.srv)
			err := checkWithin(tc.probe, addrs[tc.srv], 300*time.Millisecond)
			if err == nil {
				t.Fatal("wrong protocol reported up")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reason %q, want %v saying %q", err, tc.is, tc.want)
			}
			t.Logf("reason: %v", err)
		})
	}

	t.Run("mysql unknown user", func(t *testing.T) {
		need(t, "mysql")
		err := check(health.MySQL{User: "nobody-here"}, addrs["mysql"])
		if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "Access denied") {
			t.Fatalf("got %v, want access denied", err)
		}
	})
	t.Run("redis auth", func(t *testing.T) {
		need(t, "redis")
		locked := testservers.Redis(t, "--requirepass", "secret")
		if err := check(health.Redis{Password: "secret"}, locked.Addr); err != nil {
			t.Fatalf("with the password: %v", err)
		}
		err := check(health.Redis{}, locked.Addr)
		if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("without the password: %v", err)
		}
		err = check(health.Redis{Password: "wrong"}, locked.Addr)
		if !errors.Is(err, health.ErrRefused) {
			t.Fatalf("with a wrong password: %v", err)
		}
	})
	t.Run("ldap anonymous bind refused", func(t *testing.T) {
		need(t, "ldap")
		closed := testservers.LDAP(t, "disallow bind_anon")
		err := check(health.LDAP{}, closed.Addr)
		if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "resultCode") {
			t.Fatalf("got %v, want a refused bind", err)
		}
		t.Logf("reason: %v", err)
	})
	t.Run("redis auth without a password set", func(t *testing.T) {
		need(t, "redis")
		err := check(health.Redis{Password: "secret"}, addrs["redis"])
		if !errors.Is(err, health.ErrRefused) {
			t.Fatalf("got %v, want a refusal", err)
		}
	})
}

type restartable struct {
	stop, start func(testing.TB)
}

func (r restartable) Stop(tb testing.TB)  { r.stop(tb) }
func (r restartable) Start(tb testing.TB) { r.start(tb) }

func TestHTTPProbe(t *testing.T) {
	testutil.CheckLeaks(t)
	web := testutil.HTTPBackend(t, "web")
	for _, tc := range []struct {
		name  string
		probe health.HTTP
		ok    bool
		want  string
	}{
		{"default", health.HTTP{}, true, ""},
		{"status range", health.HTTP{Path: "/status?code=404", Status: [2]int{400, 499}}, true, ""},
		{"bad status", health.HTTP{Path: "/status?code=503"}, false, "status 503 Service Unavailable, want 200-399"},
		{"exact status", health.HTTP{Path: "/status?code=204", Status: [2]int{200}}, false, "want 200"},
		{"body", health.HTTP{Body: "web"}, true, ""},
		{"body missing", health.HTTP{Body: "healthy"}, false, `body does not contain "healthy"`},
		{"method and host", health.HTTP{Method: "HEAD", Path: "/healthz", Host: "app.test"}, true, ""},
		{"bad path", health.HTTP{Path: "/a b"}, false, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.probe, web.Addr)
			if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want ok=%v %q", err, tc.ok, tc.want)
			}
		})
	}
	last, _ := web.LastRequest()
	if last.Method != "HEAD" || last.Host != "app.test" || last.URI != "/healthz" {
		t.Fatalf("request sent: %+v", last)
	}
}

func TestHTTPSProbeFollowsBackendTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	other := testutil.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("sni=" + r.TLS.ServerName))
	}))
	srv.TLS = ca.ServerConfig(t, "backend.test")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	for _, tc := range []struct {
		name  string
		probe health.Probe
		want  string // empty: passes
	}{
		{"verified with the backend's name", health.HTTP{TLS: ca.ClientConfig("backend.test"), Body: "sni=backend.test"}, ""},
		{"SNI from Host", health.HTTP{TLS: &tls.Config{RootCAs: ca.Pool()}, Host: "backend.test", Body: "sni=backend.test"}, ""},
		{"wrong name", health.HTTP{TLS: ca.ClientConfig("other.test")}, "certificate"},
		{"unknown CA", health.HTTP{TLS: other.ClientConfig("backend.test")}, "certificate"},
		{"no verification when the backend skips it", health.HTTP{TLS: &tls.Config{InsecureSkipVerify: true}}, ""},
		{"plain HTTP to a TLS server", health.HTTP{}, "Bad Request"},
		{"tcp over TLS", probeOf(health.TCP{TLS: ca.ClientConfig("backend.test")}), ""},
		{"tcp over TLS, unknown CA", probeOf(health.TCP{TLS: other.ClientConfig("backend.test")}), "certificate"},
		{"tcp over TLS, no name for an IP", probeOf(health.TCP{TLS: &tls.Config{RootCAs: ca.Pool()}}), "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.probe, addr)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func probeOf(p health.Probe) health.Probe { return p }

func TestTCPProbeTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = health.TCP{Expect: []byte("hello")}.Check(ctx, health.Target{Addr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "no reply before the timeout") {
		t.Fatalf("got %v", err)
	}
}
