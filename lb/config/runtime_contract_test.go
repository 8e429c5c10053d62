package config_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestRuntimeConnectionRate opens a burst of connections, far fewer than
// the listen backlog, at once to a TCP frontend with a
// connection_rate_limit of 10 per second: every one is served (none reset
// or refused), the first ones at once (the burst of one second's worth),
// the rest at about the rate. The bounds are wide for a loaded machine:
// the rate can be slower, never faster.
func TestRuntimeConnectionRate(t *testing.T) {
	const rate, n = 10, 25
	tcp := tcpServers(t, "tcp", nil, "127.0.0.40")
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "tcp", "forward_port": %d, "pool": ["127.0.0.40"]}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "tcp", "connection_rate_limit": %d}]}`,
		tcp.port, port, rate))
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	start := time.Now()
	var mu sync.Mutex
	var served []time.Duration
	var failed []error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			line, err := greet(addr, nil) // 5 s to be served: the wait is 1.5 s
			mu.Lock()
			defer mu.Unlock()
			if err != nil || line != "tcp 127.0.0.40" {
				failed = append(failed, fmt.Errorf("%q: %w", line, err))
				return
			}
			served = append(served, time.Since(start))
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d connections failed, want none refused: %v", len(failed), n, failed)
	}
	slices.Sort(served)
	// The first second's worth goes at once, then one every 1/rate: the
	// last after (n-rate)/rate = 1.5 s. Allow 20% less for timer slack.
	least := time.Duration(n-rate) * time.Second * 8 / (10 * rate)
	if last := served[n-1]; last < least || last > 15*time.Second {
		t.Errorf("the %d connections took %v, want about %v at %d per second", n, last, time.Duration(n-rate)*time.Second/rate, rate)
	}
	early := 0
	for _, d := range served {
		if d < 500*time.Millisecond {
			early++
		}
	}
	if early > rate+rate/2+2 {
		t.Errorf("%d connections served in the first 0.5 s, want at most about %d (the burst and half a second at the rate)", early, rate+rate/2)
	}
	if st := rt.Pool("tcp").Stats(); st.Servers[0].Total != n {
		t.Errorf("the server had %d connections, want %d", st.Servers[0].Total, n)
	}
}

// TestRuntimeFailoverReturns sends requests to failover_host while every
// server is down, and to the server again once it is up.
func TestRuntimeFailoverReturns(t *testing.T) {
	failover := httpServers(t, "failover", nil, "127.0.0.41")
	var healthy atomic.Bool
	srv := listenSame(t, "127.0.0.42")
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "server")
	})}
	go hs.Serve(srv.lns[0])
	t.Cleanup(func() { hs.Close() })
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.42"],
	     "failover_host": "127.0.0.41:%d",
	     "health_check": {"http_config": {"uri": "/health", "code": 200}, "check_delay": 20, "check_timeout": 500, "check_max_retries": 1}}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}]}`, srv.port, failover.port, port))
	state := func(want string) func() bool {
		return func() bool {
			st, _ := rt.ServerStats("web")
			return len(st) == 1 && st[0].ServerState == want
		}
	}
	testutil.Eventually(t, "the server down", state("stopped"))
	client := newClient(t, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for range 3 {
		if code, body, _ := get(t, client, url); code != 200 || body != "failover 127.0.0.41" {
			t.Fatalf("with every server down: %d %q, want the failover host", code, body)
		}
	}
	healthy.Store(true)
	testutil.Eventually(t, "the server up", state("running"))
	for range 3 {
		if code, body, _ := get(t, client, url); code != 200 || body != "server" {
			t.Fatalf("with the server up again: %d %q, want the server", code, body)
		}
	}
}

// TestRuntimeHostWithBridging sends requests to a backend with
// ssl_bridging and host: the server sees host as the TLS server name and
// as the Host header, whatever Host the client sent.
func TestRuntimeHostWithBridging(t *testing.T) {
	ca := testutil.NewCA(t)
	secure := httpServers(t, "secure", ca.ServerConfig(t, "origin.test"), "127.0.0.43")
	port := freePort(t)
	rt := newRuntime(t, config.RuntimeOptions{TLSClientRoots: ca.Pool()})
	apply(t, rt, fmt.Sprintf(`{"lb": {"id": "lb"},
	  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.43"],
	     "ssl_bridging": true, "host": "origin.test"}],
	  "frontends": [{"id": "f", "inbound_port": %d, "backend_id": "web"}]}`, secure.port, port))
	client := newClient(t, nil)
	for _, host := range []string{"public.example", "other.example:8080"} {
		code, body, h := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/", port), "Host", host)
		if code != 200 || body != "secure 127.0.0.43" {
			t.Fatalf("Host %s: %d %q", host, code, body)
		}
		if sni, seen := h.Get("X-SNI-Seen"), h.Get("X-Host-Seen"); sni != "origin.test" || seen != "origin.test" {
			t.Errorf("Host %s: the server saw SNI %q and Host %q, want origin.test for both", host, sni, seen)
		}
	}
}
