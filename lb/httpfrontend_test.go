package lb_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

// The lb tests serve L7 through lbkit's HTTP/1.1 engine (lb.HTTPFrontend),
// or through net/http's server when LBKIT_TEST_HTTP_ENGINE=net/http. The
// tests that run under forEngines run over both, as subtests.
const (
	engineLbkit   = "lbkit"
	engineNetHTTP = "nethttp"
)

// testEngine is the engine of t: the one of the forEngines subtest it
// runs under, else the environment's choice.
func testEngine(tb testing.TB) string {
	for _, part := range strings.Split(tb.Name(), "/") {
		switch part {
		case "engine=" + engineLbkit:
			return engineLbkit
		case "engine=" + engineNetHTTP:
			return engineNetHTTP
		}
	}
	if os.Getenv("LBKIT_TEST_HTTP_ENGINE") == "net/http" {
		return engineNetHTTP
	}
	return engineLbkit
}

// forEngines runs f over both engines, as subtests.
func forEngines(t *testing.T, f func(t *testing.T)) {
	for _, e := range []string{engineLbkit, engineNetHTTP} {
		t.Run("engine="+e, f)
	}
}

// frontendOf returns the frontend that serves srv in tb's engine.
func frontendOf(tb testing.TB, srv *http.Server) lb.TLSFrontend {
	tb.Helper()
	if testEngine(tb) == engineNetHTTP {
		return srv
	}
	fe, err := lb.NewHTTPFrontend(srv)
	if err != nil {
		tb.Fatalf("NewHTTPFrontend: %v", err)
	}
	return fe
}
