package health_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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
// stopped, up again after a restart. Each server is started once.
func TestProbesRealServers(t *testing.T) {
	testutil.CheckLeaks(t)
	web := testutil.HTTPBackend(t, "web")
	redis := testservers.Redis(t)
	ldap := testservers.LDAP(t)
	pg := testservers.PostgreSQL(t)
	maria := testservers.MariaDB(t)

	type server interface {
		Stop(testing.TB)
		Start(testing.TB)
	}
	webSrv := restartable{stop: func(testing.TB) { web.Close() }, start: func(testing.TB) { web.Restart(t) }}
	for _, tc := range []struct {
		name  string
		probe health.Probe
		addr  string
		srv   server
	}{
		{"tcp", health.TCP{}, redis.Addr, redis},
		{"tcp send/expect", health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")}, redis.Addr, redis},
		{"http", health.HTTP{Path: "/", Body: "web"}, web.Addr, webSrv},
		{"redis", health.Redis{}, redis.Addr, redis},
		{"ldap", health.LDAP{}, ldap.Addr, ldap},
		{"pgsql", health.PostgreSQL{User: testservers.PGUser}, pg.Addr, pg},
		{"pgsql unknown user", health.PostgreSQL{User: "nobody-here"}, pg.Addr, pg},
		{"mysql greeting", health.MySQL{}, maria.Addr, maria},
		{"mysql login", health.MySQL{User: testservers.MySQLUser}, maria.Addr, maria},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(tc.probe, tc.addr); err != nil {
				t.Fatalf("running server: %v", err)
			}
			tc.srv.Stop(t)
			err := check(tc.probe, tc.addr)
			if err == nil || !strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("stopped server: %v, want a refused connection", err)
			}
			t.Logf("reason: %v", err)
			tc.srv.Start(t)
			if err := check(tc.probe, tc.addr); err != nil {
				t.Fatalf("restarted server: %v", err)
			}
		})
	}

	// A probe never reports another protocol as up.
	for _, tc := range []struct {
		name  string
		probe health.Probe
		addr  string
		want  string // in the reason
	}{
		{"redis vs pgsql", health.Redis{}, pg.Addr, ""},
		{"redis vs http", health.Redis{}, web.Addr, "not a Redis reply"},
		{"redis vs mysql", health.Redis{}, maria.Addr, "not a Redis reply"},
		{"mysql vs http", health.MySQL{}, web.Addr, "no reply before the timeout"},
		{"mysql vs redis", health.MySQL{}, redis.Addr, "no reply before the timeout"},
		{"mysql vs pgsql", health.MySQL{User: "check"}, pg.Addr, "no reply before the timeout"},
		{"pgsql vs redis", health.PostgreSQL{}, redis.Addr, "no reply before the timeout"},
		{"pgsql vs http", health.PostgreSQL{}, web.Addr, "no reply before the timeout"},
		{"pgsql vs mysql", health.PostgreSQL{}, maria.Addr, ""},
		{"pgsql vs ldap", health.PostgreSQL{}, ldap.Addr, ""},
		{"ldap vs redis", health.LDAP{}, redis.Addr, "no reply before the timeout"},
		{"ldap vs http", health.LDAP{}, web.Addr, "no reply before the timeout"},
		{"ldap vs mysql", health.LDAP{}, maria.Addr, "not an LDAP message"},
		{"http vs redis", health.HTTP{}, redis.Addr, "closed by server"},
		{"http vs mysql", health.HTTP{}, maria.Addr, ""},
		{"http vs ldap", health.HTTP{}, ldap.Addr, ""},
		{"tcp expect vs http", health.TCP{Send: []byte("PING\r\n"), Expect: []byte("+PONG\r\n")}, web.Addr, "unexpected reply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkWithin(tc.probe, tc.addr, 300*time.Millisecond)
			if err == nil {
				t.Fatal("wrong protocol reported up")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reason %q, want it to say %q", err, tc.want)
			}
			t.Logf("reason: %v", err)
		})
	}

	t.Run("mysql unknown user", func(t *testing.T) {
		err := check(health.MySQL{User: "nobody-here"}, maria.Addr)
		if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "Access denied") {
			t.Fatalf("got %v, want access denied", err)
		}
	})
	t.Run("redis auth", func(t *testing.T) {
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
		closed := testservers.LDAP(t, "disallow bind_anon")
		err := check(health.LDAP{}, closed.Addr)
		if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "resultCode") {
			t.Fatalf("got %v, want a refused bind", err)
		}
		t.Logf("reason: %v", err)
	})
	t.Run("redis auth without a password set", func(t *testing.T) {
		err := check(health.Redis{Password: "secret"}, redis.Addr)
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
