package health_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// TestCheckResultsInPoolStats runs real checks against loopback servers and
// finds their results, named as HAProxy names them, in the pool's Stats.
func TestCheckResultsInPoolStats(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	web := testutil.HTTPBackend(t, "web")
	dead := testutil.ClosedAddr(t)
	for _, tc := range []struct {
		name   string
		probe  health.Probe
		addr   string
		passed bool
		status string
		code   int
	}{
		{"tcp up", health.TCP{}, echo.Addr, true, "L4OK", 0},
		{"tcp refused", health.TCP{}, dead, false, "L4CON", 0},
		{"tls to a plain echo", health.TCP{TLS: &tls.Config{InsecureSkipVerify: true}}, echo.Addr, false, "L6RSP", 0},
		{"http up", health.HTTP{}, web.Addr, true, "L7OK", 0},
		{"http status", health.HTTP{Path: "/status?code=503"}, web.Addr, false, "L7STS", 503},
		{"http on a tcp echo", health.HTTP{}, echo.Addr, false, "L7RSP", 0},
		{"http refused", health.HTTP{}, dead, false, "L4CON", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon := &health.Monitor{Probe: tc.probe, Interval: 50 * time.Millisecond, Timeout: 2 * time.Second, Jitter: -1}
			pool := &lb.Pool{Name: "p", HealthChecker: mon}
			if err := pool.Update([]lb.Server{{Name: "s", Addr: tc.addr}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				pool.Run(ctx)
			}()
			defer func() {
				cancel()
				<-done
			}()
			start := time.Now()
			testutil.Eventually(t, "two checks", func() bool {
				h := pool.Stats().Servers[0].Health
				return h.Passes+h.Fails >= 2
			})
			sv := pool.Stats().Servers[0]
			h := sv.Health
			last := h.Last
			if last.Passed != tc.passed || last.Status != tc.status || last.Code != tc.code ||
				last.Time.Before(start) || last.Duration <= 0 || last.Duration > 2*time.Second ||
				(last.Reason == "") != tc.passed {
				t.Fatalf("last check = %+v", last)
			}
			if tc.passed {
				if h.Fails != 0 || h.Failures != 0 || h.Downs != 0 || sv.State != lb.StateUp {
					t.Fatalf("health = %+v, state %v", h, sv.State)
				}
			} else if h.Passes != 0 || h.Failures < 2 || h.Downs != 1 || sv.State != lb.StateDown || h.Downtime <= 0 {
				t.Fatalf("health = %+v, state %v", h, sv.State)
			}
		})
	}
}
