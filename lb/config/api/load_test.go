package api_test

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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

// echoServers echo what they receive on each of ips, at one port.
func echoServers(t *testing.T, ips ...string) int {
	t.Helper()
	port, lns := sameport(t, ips...)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	for _, ln := range lns {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns[c] = true
				mu.Unlock()
				wg.Go(func() {
					io.Copy(c, c)
					c.Close()
				})
			}
		})
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return port
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// isReset reports a connection reset or broken pipe.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestChangesUnderLoad runs a real runtime behind the API and makes 20
// changes through the API while a keep-alive HTTPS load and a TCP load
// run on two frontends that stay: servers added and removed, weights,
// ACLs, routes, a certificate replaced, a frontend added and one removed.
// Not one request may fail and not one connection may be reset.
func TestChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	webPort := webServers(t, "web", "127.0.0.2", "127.0.0.3", "127.0.0.7")
	apiPort := webServers(t, "api", "127.0.0.4")
	tcpPort := echoServers(t, "127.0.0.5", "127.0.0.6", "127.0.0.7")
	httpsPort, tcpFrontPort, extraPort := freePort(t), freePort(t), freePort(t)

	certA := certPEM(t, ca, "site.example")
	doc := fmt.Sprintf(`{
  "lb": {"id": "4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001", "name": "demo"},
  "backends": [
    {"id": "web", "name": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2", "127.0.0.3"]},
    {"id": "api", "name": "api", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.4"]},
    {"id": "tcp", "name": "tcp", "forward_protocol": "tcp", "forward_port": %d, "pool": ["127.0.0.5", "127.0.0.6"]}
  ],
  "certificates": [{"id": "cert-a", "name": "a", "certificate_chain": %q}],
  "frontends": [
    {"id": "https", "name": "https", "inbound_port": %d, "backend_id": "web", "certificate_ids": ["cert-a"]},
    {"id": "l4", "name": "l4", "inbound_port": %d, "backend_id": "tcp"}
  ]
}`, webPort, apiPort, tcpPort, certA, httpsPort, tcpFrontPort)
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	rt := config.NewRuntime(config.RuntimeOptions{IPs: ips, DrainGrace: 5 * time.Second})
	defer rt.Close(context.Background())
	m := &config.Manager{Store: &config.FileStore{Path: path}, Applier: rt}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&api.Handler{Manager: m, Stats: rt, Certificates: rt, IPs: ips, Token: token})
	defer srv.Close()
	e := &env{t: t, url: srv.URL, path: path, m: m}

	// The loads: bounded in count and in time, stopped once the changes
	// are done.
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	var l7ok, l7fail, l4ok, l4fail, resets atomic.Int64
	var failures sync.Map
	note := func(what string, err error) {
		failures.LoadOrStore(what+": "+err.Error(), true)
		if isReset(err) {
			resets.Add(1)
		}
	}
	httpsURL := fmt.Sprintf("https://site.example:%d", httpsPort)
	tlsCfg := ca.ClientConfig("site.example")
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			tr := &http.Transport{TLSClientConfig: tlsCfg, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", httpsPort))
			}, MaxIdleConnsPerHost: 1}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			defer tr.CloseIdleConnections()
			paths := []string{"/", "/api/x"}
			for n := 0; n < 20000 && ctx.Err() == nil; n++ {
				resp, err := c.Get(httpsURL + paths[(n+i)%2])
				if err != nil {
					l7fail.Add(1)
					note("https", err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					l7fail.Add(1)
					note("https", fmt.Errorf("status %d, body %v", resp.StatusCode, err))
					continue
				}
				l7ok.Add(1)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			msg := []byte("ping\n")
			buf := make([]byte, len(msg))
			for n := 0; n < 5000 && ctx.Err() == nil; n++ {
				c, err := dialer.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", tcpFrontPort))
				if err != nil {
					l4fail.Add(1)
					note("tcp dial", err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for range 20 {
					if _, err = c.Write(msg); err != nil {
						break
					}
					if _, err = io.ReadFull(c, buf); err != nil {
						break
					}
				}
				c.Close()
				if err != nil {
					l4fail.Add(1)
					note("tcp", err)
					continue
				}
				l4ok.Add(1)
			}
		})
	}
	testutil.Eventually(t, "both loads under way", func() bool { return l7ok.Load() > 20 && l4ok.Load() > 5 })

	// Each change is followed by a look at what it changed.
	fingerprint := func(port int) string {
		c, err := tls.DialWithDialer(dialer, "tcp", fmt.Sprintf("127.0.0.1:%d", port), tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sum := sha1.Sum(c.ConnectionState().PeerCertificates[0].Raw)
		return hex.EncodeToString(sum[:])
	}
	served := func(port int, scheme string) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
		resp, err := c.Get(fmt.Sprintf("%s://127.0.0.1:%d/", scheme, port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// answer is what the HTTPS frontend answers on a new connection: the
	// body, or the redirect's status and location.
	answer := func(path string) string {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", httpsPort))
			}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(httpsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return string(body)
	}
	b := z + "/backends/"
	var fe, acl, route, certB obj
	steps := []struct {
		name string
		do   func()
	}{
		{"add a web server", func() { e.must(200, "POST", b+"web/servers", obj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"weigh a web server", func() { e.must(200, "PUT", b+"web/servers/127.0.0.2/weight", obj{"weight": 3}, nil) }},
		{"add an ACL", func() {
			e.must(200, "POST", z+"/frontends/https/acls", obj{"name": "block", "index": 0, "action": obj{"type": "deny"}, "match": obj{"ip_subnet": []string{"192.0.2.0/24"}}}, &acl)
		}},
		{"add a route", func() {
			e.must(200, "POST", z+"/routes", obj{"frontend_id": "https", "backend_id": "api", "match": obj{"path_begin": "/api"}}, &route)
			if got := answer("/api/x"); got != "api 127.0.0.4" {
				t.Errorf("/api/x after the route: %q", got)
			}
		}},
		{"add a certificate", func() {
			e.must(200, "POST", lbPath+"/certificates", obj{"name": "b", "custom_certificate": obj{"certificate_chain": certPEM(t, ca, "site.example")}}, &certB)
		}},
		{"replace the certificate", func() {
			e.must(200, "PUT", z+"/frontends/https", obj{"name": "https", "inbound_port": httpsPort, "backend_id": "web", "certificate_ids": []string{str(certB, "id")}}, nil)
			if got := fingerprint(httpsPort); got != str(certB, "fingerprint") {
				t.Errorf("the frontend presents %s, want the new certificate %s", got, str(certB, "fingerprint"))
			}
		}},
		{"add a frontend", func() {
			e.must(200, "POST", lbPath+"/frontends", obj{"name": "extra", "inbound_port": extraPort, "backend_id": "web"}, &fe)
			if !served(extraPort, "http") {
				t.Error("the new frontend does not serve")
			}
		}},
		{"remove a web server", func() {
			e.must(200, "DELETE", b+"web/servers", obj{"server_ip": []string{"127.0.0.7"}}, nil)
			for range 6 {
				if got := answer("/"); got == "web 127.0.0.7" {
					t.Error("a removed server still gets new requests")
				}
			}
		}},
		{"weigh another web server", func() { e.must(200, "PUT", b+"web/servers/127.0.0.3/weight", obj{"weight": 2}, nil) }},
		{"set the ACLs", func() {
			e.must(200, "PUT", z+"/frontends/https/acls", obj{"acls": []obj{
				{"name": "block", "index": 0, "action": obj{"type": "deny"}, "match": obj{"ip_subnet": []string{"198.51.100.0/24"}}},
				{"name": "old", "index": 1, "action": obj{"type": "redirect", "redirect": obj{"type": "location", "target": "https://example.com/"}},
					"match": obj{"http_filter": "path_begin", "http_filter_value": []string{"/old"}}},
			}}, nil)
			if got := answer("/old/page"); got != "302 https://example.com/" {
				t.Errorf("/old/page after the ACLs: %q", got)
			}
		}},
		{"change the route", func() {
			e.must(200, "PUT", z+"/routes/"+str(route, "id"), obj{"backend_id": "api", "match": obj{"path_begin": "/api/"}}, nil)
		}},
		{"add a TCP server", func() { e.must(200, "POST", b+"tcp/servers", obj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"weigh a TCP server", func() { e.must(200, "PUT", b+"tcp/servers/127.0.0.7/weight", obj{"weight": 4}, nil) }},
		{"remove the added frontend", func() {
			e.must(204, "DELETE", z+"/frontends/"+str(fe, "id"), nil, nil)
			testutil.Eventually(t, "the removed frontend to stop", func() bool { return !served(extraPort, "http") })
		}},
		{"update an ACL", func() {
			var l obj
			e.must(200, "GET", z+"/frontends/https/acls?order_by=name_asc", nil, &l)
			id := str(l["acls"].([]any)[0], "id")
			e.must(200, "PUT", z+"/acls/"+id, obj{"name": "block", "index": 0, "action": obj{"type": "deny"}, "match": obj{"ip_subnet": []string{"203.0.113.0/24"}}}, nil)
		}},
		{"delete the route", func() {
			e.must(204, "DELETE", z+"/routes/"+str(route, "id"), nil, nil)
			if got := answer("/api/x"); got[:4] != "web " {
				t.Errorf("/api/x without the route: %q", got)
			}
		}},
		{"delete the old certificate", func() { e.must(204, "DELETE", z+"/certificates/cert-a", nil, nil) }},
		{"remove the TCP server", func() { e.must(200, "DELETE", b+"tcp/servers", obj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"drain a web server", func() {
			e.must(200, "PUT", b+"web/servers/127.0.0.2/state", obj{"admin_state": "drain"}, nil)
		}},
		{"make it ready again", func() {
			e.must(200, "PUT", b+"web/servers/127.0.0.2/state", obj{"admin_state": "ready"}, nil)
		}},
	}
	if len(steps) != 20 {
		t.Fatalf("%d changes, want 20", len(steps))
	}
	for _, s := range steps {
		before := l7ok.Load() + l4ok.Load()
		s.do()
		// Let some traffic through each configuration.
		testutil.Eventually(t, "traffic after "+s.name, func() bool { return l7ok.Load()+l4ok.Load() > before+20 })
	}
	stop()
	wg.Wait()
	failures.Range(func(k, _ any) bool { t.Error(k); return true })
	t.Logf("https: %d ok, %d failed; tcp: %d connections ok, %d failed; resets %d", l7ok.Load(), l7fail.Load(), l4ok.Load(), l4fail.Load(), resets.Load())
	if l7fail.Load() != 0 || l4fail.Load() != 0 || resets.Load() != 0 {
		t.Fatal("requests failed during the changes")
	}
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
