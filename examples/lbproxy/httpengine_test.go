package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// LBKIT_TEST_HTTP_ENGINE=net/http runs lbproxy's tests with net/http's
// server as the default of -http-engine.
func init() {
	if e := os.Getenv("LBKIT_TEST_HTTP_ENGINE"); e != "" {
		defaultHTTPEngine = e
	}
}

// TestLBProxyHTTPEngines: both engines of -http-engine serve, and an
// unknown one is refused.
func TestLBProxyHTTPEngines(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "a")
	for _, engine := range []string{"lbkit", "net/http"} {
		cfg := withFlags(t, "-backends", backend.Addr, "-http-engine", engine)
		addr := start(t, cfg)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
		for range 3 {
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("%s: %v", engine, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.Header.Get("X-Backend") != "a" {
				t.Fatalf("%s: response %v", engine, resp.Header)
			}
		}
		c.CloseIdleConnections()
	}
	err := refused(t, withFlags(t, "-backends", backend.Addr, "-http-engine", "other"))
	if err == nil || !strings.Contains(err.Error(), "-http-engine") {
		t.Errorf("unknown engine: %v", err)
	}
}
