package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

// sameport listens on one port of each of ips (loopback addresses), as a
// backend's pool at its forward_port.
func sameport(t *testing.T, ips ...string) (int, []net.Listener) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return port, lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatal("no port free on every address")
	return 0, nil
}

// webServers serves "NAME IP" over HTTP on each of ips, at one port.
func webServers(t *testing.T, name string, ips ...string) int {
	t.Helper()
	port, lns := sameport(t, ips...)
	for i, ln := range lns {
		ip := ips[i]
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", name, ip)
		}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	return port
}

// TestWebhookFromTheRuntime: a server drained through the API changes
// state in the runtime, whose event reaches the subscribed webhook.
func TestWebhookFromTheRuntime(t *testing.T) {
	testutil.CheckLeaks(t)
	webPort := webServers(t, "web", "127.0.0.2")
	h := &hook{}
	hooks := httptest.NewServer(h)
	defer hooks.Close()
	doc := fmt.Sprintf(`{
  "lb": {"id": "4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001", "name": "demo"},
  "backends": [{"id": "web", "name": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2"]}],
  "subscribers": [{"id": "ops", "name": "ops", "webhook_config": {"uri": %q}}]
}`, webPort, hooks.URL+"/events")
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &api.Notifier{}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	rt := config.NewRuntime(config.RuntimeOptions{IPs: ips, DrainGrace: time.Second, OnServerEvent: n.Notify})
	defer rt.Close(context.Background())
	m := &config.Manager{Store: &config.FileStore{Path: path}, Applier: rt}
	n.Manager = m
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	runNotifier(t, n)
	srv := httptest.NewServer(&api.Handler{Manager: m, Stats: rt, IPs: ips, Token: token})
	defer srv.Close()
	e := &env{t: t, url: srv.URL, path: path, m: m}
	e.must(200, "POST", z+"/lb/4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001/subscribe", obj{"subscriber_id": "ops"}, nil)
	e.must(200, "PUT", z+"/backends/web/servers/127.0.0.2/state", obj{"admin_state": "maint"}, nil)
	testutil.Eventually(t, "the webhook", func() bool {
		for _, ev := range h.events() {
			if ev.IP == "127.0.0.2" && ev.BackendID == "web" && ev.SubscriberID == "ops" && ev.To == "stopped" {
				return true
			}
		}
		return false
	})
	var st obj
	e.must(200, "GET", lbPath+"/backend-stats", nil, &st)
	if s := st["backend_servers_stats"].([]any)[0]; str(s, "server_state") != "stopped" || str(s, "admin_state") != "maint" {
		t.Fatalf("stats after maint: %v", st)
	}
}
