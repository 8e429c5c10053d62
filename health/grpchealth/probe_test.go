package grpchealth_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealthsrv "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/health/grpchealth"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// mode is how the probe and the server speak: TLS, or cleartext HTTP/2.
type mode struct {
	name string
	// server returns the server's options.
	server func(ca *testutil.CA, t *testing.T) []grpc.ServerOption
	// client returns the probe's TLS configuration (nil for h2c).
	client func(ca *testutil.CA) *tls.Config
}

var modes = []mode{
	{
		name: "tls",
		server: func(ca *testutil.CA, t *testing.T) []grpc.ServerOption {
			return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(ca.ServerConfig(t)))}
		},
		client: func(ca *testutil.CA) *tls.Config { return &tls.Config{RootCAs: ca.Pool()} },
	},
	{
		name:   "h2c",
		server: func(*testutil.CA, *testing.T) []grpc.ServerOption { return nil },
		client: func(*testutil.CA) *tls.Config { return nil },
	},
}

// healthServer is a grpc-go server on a loopback port with the standard
// health service, when withHealth.
type healthServer struct {
	addr   string
	health *grpchealthsrv.Server
	stop   func()
}

func startHealthServer(t *testing.T, m mode, ca *testutil.CA, withHealth bool) *healthServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.server(ca, t)...)
	hs := &healthServer{addr: l.Addr().String()}
	if withHealth {
		hs.health = grpchealthsrv.NewServer()
		healthpb.RegisterHealthServer(srv, hs.health)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	hs.stop = func() { srv.Stop(); <-done }
	t.Cleanup(hs.stop)
	return hs
}

// check runs one check of addr with a 2 s timeout.
func check(t *testing.T, p grpchealth.Probe, addr string) error {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	return p.Check(ctx, health.Target{Addr: addr})
}

func TestProbe(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ca := testutil.NewCA(t)
			srv := startHealthServer(t, m, ca, true)
			srv.health.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
			srv.health.SetServingStatus("shop.Stock", healthpb.HealthCheckResponse_NOT_SERVING)
			tlsConfig := m.client(ca)

			if err := check(t, grpchealth.Probe{TLS: tlsConfig}, srv.addr); err != nil {
				t.Errorf("server as a whole: %v, want SERVING", err)
			}
			if err := check(t, grpchealth.Probe{Service: "shop.Cart", TLS: tlsConfig}, srv.addr); err != nil {
				t.Errorf("shop.Cart: %v, want SERVING", err)
			}
			err := check(t, grpchealth.Probe{Service: "shop.Stock", TLS: tlsConfig}, srv.addr)
			if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), "NOT_SERVING") {
				t.Errorf("shop.Stock: %v, want ErrRefused NOT_SERVING", err)
			}
			err = check(t, grpchealth.Probe{Service: "shop.Nothing", TLS: tlsConfig}, srv.addr)
			if !errors.Is(err, health.ErrRefused) || !strings.Contains(err.Error(), `unknown service "shop.Nothing"`) {
				t.Errorf("unknown service: %v, want ErrRefused unknown service", err)
			}

			// The whole server going down is reported too.
			srv.health.Shutdown() // every service NOT_SERVING
			if err := check(t, grpchealth.Probe{TLS: tlsConfig}, srv.addr); !errors.Is(err, health.ErrRefused) {
				t.Errorf("after Shutdown: %v, want ErrRefused", err)
			}

			// A server without the health service.
			bare := startHealthServer(t, m, ca, false)
			if err := check(t, grpchealth.Probe{TLS: tlsConfig}, bare.addr); !errors.Is(err, health.ErrUnexpected) {
				t.Errorf("without health service: %v, want ErrUnexpected", err)
			}

			// A server gone.
			srv.stop()
			err = check(t, grpchealth.Probe{TLS: tlsConfig}, srv.addr)
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				t.Errorf("server gone: %v, want a dial error", err)
			}
		})
	}
}

// TestProbeTimeout checks a server that accepts and never answers: the
// check fails by its deadline.
func TestProbeTimeout(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ca := testutil.NewCA(t)
			silent := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			err := grpchealth.Probe{TLS: m.client(ca)}.Check(ctx, health.Target{Addr: silent.Addr})
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("silent server: %v, want a timeout", err)
			}
			if silent.Accepted() != 1 {
				t.Errorf("silent server accepted %d connections, want 1", silent.Accepted())
			}
		})
	}
}

// TestProbeTLSVerify checks that the probe verifies the server's
// certificate against its TLS configuration.
func TestProbeTLSVerify(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	srv := startHealthServer(t, modes[0], ca, true)
	other := testutil.NewCA(t)
	err := check(t, grpchealth.Probe{TLS: &tls.Config{RootCAs: other.Pool()}}, srv.addr)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("untrusted certificate: %v, want a TLS handshake error", err)
	}
	// The name verified is the Probe's ServerName when set.
	err = check(t, grpchealth.Probe{TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "elsewhere.test"}}, srv.addr)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("wrong name: %v, want a TLS handshake error", err)
	}
}

// TestMonitorGRPC runs the probe in a Monitor: the server goes down when
// its service stops serving or the server stops, and comes back, and each
// check's status is HAProxy's.
func TestMonitorGRPC(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ca := testutil.NewCA(t)
			srv := startHealthServer(t, m, ca, true)
			srv.health.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
			mon := &health.Monitor{
				Probe:    grpchealth.Probe{Service: "shop.Cart", TLS: m.client(ca)},
				Interval: 20 * time.Millisecond, TransientInterval: 20 * time.Millisecond,
				Timeout: time.Second, Fall: 1, Rise: 1,
			}
			pool := &lb.Pool{Name: "grpc", HealthChecker: mon, InitialState: lb.StateDown}
			if err := pool.Update([]lb.Server{{Name: "a", Addr: srv.addr}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); pool.Run(ctx) }()
			defer func() { cancel(); <-done }()

			wait := func(want lb.State, status string) {
				t.Helper()
				testutil.Eventually(t, "server "+want.String()+" with check "+status, func() bool {
					s := serverStats(pool, "a")
					return s.State == want && s.Health.Last.Status == status
				})
			}
			wait(lb.StateUp, "L7OK")
			srv.health.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_NOT_SERVING)
			wait(lb.StateDown, "L7STS")
			srv.health.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
			wait(lb.StateUp, "L7OK")
			srv.stop()
			wait(lb.StateDown, "L4CON")
		})
	}
}

func serverStats(p *lb.Pool, name string) lb.ServerStats {
	for _, s := range p.Stats().Servers {
		if s.Name == name {
			return s
		}
	}
	return lb.ServerStats{}
}
