package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// must sends one API request with Go's client and decodes the answer into
// out; a status other than want fails the test.
func (r *apiRun) must(t *testing.T, want int, method, path string, body any, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, r.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", apiToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// isReset reports a connection reset or broken pipe.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestAPIChangesUnderLoad runs lbproxy -config and makes 20
// changes through the API while a keep-alive HTTPS load and a TCP load
// run on two frontends that stay: servers added and removed, weights,
// ACLs, routes, a certificate replaced, a frontend added and one removed.
// Not one request may fail and not one connection may be reset.
func TestAPIChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	webPort := sameportServers(t, "web", true, "127.0.0.2", "127.0.0.3", "127.0.0.7")
	apiPort := sameportServers(t, "api", true, "127.0.0.4")
	tcpPort := sameportServers(t, "tcp", false, "127.0.0.5", "127.0.0.6", "127.0.0.7")
	httpsPort, tcpFrontPort, extraPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)

	certA := certPEM(t, ca.Leaf(t, "site.example"))
	doc := fmt.Sprintf(`{
  "lb": {"id": "lb", "name": "demo"},
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
	r := startAPI(t, doc)
	const lbPath = "/lbs/lb"

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
				if err != nil && ctx.Err() != nil {
					break // the load stopped while dialling: no failure of the proxy
				}
				if err != nil {
					l4fail.Add(1)
					note("tcp dial", err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				rd := bufio.NewReader(c)
				if _, err = rd.ReadString('\n'); err != nil { // the server's greeting
					c.Close()
					l4fail.Add(1)
					note("tcp greeting", err)
					continue
				}
				for range 20 {
					if _, err = c.Write(msg); err != nil {
						break
					}
					if _, err = io.ReadFull(rd, buf); err != nil {
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
	b := "/backends/"
	var fe, acl, route, certB jsonObj
	steps := []struct {
		name string
		do   func()
	}{
		{"add a web server", func() { r.must(t, 200, "POST", b+"web/servers", jsonObj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"weigh a web server", func() { r.must(t, 200, "PUT", b+"web/servers/127.0.0.2/weight", jsonObj{"weight": 3}, nil) }},
		{"add an ACL", func() {
			r.must(t, 200, "POST", "/frontends/https/acls", jsonObj{"name": "block", "index": 0, "action": jsonObj{"type": "deny"}, "match": jsonObj{"ip_subnet": []string{"192.0.2.0/24"}}}, &acl)
		}},
		{"add a route", func() {
			r.must(t, 200, "POST", "/routes", jsonObj{"frontend_id": "https", "backend_id": "api", "match": jsonObj{"path_begin": "/api"}}, &route)
			if got := answer("/api/x"); got != "api 127.0.0.4" {
				t.Errorf("/api/x after the route: %q", got)
			}
		}},
		{"add a certificate", func() {
			r.must(t, 200, "POST", lbPath+"/certificates", jsonObj{"name": "b", "custom_certificate": jsonObj{"certificate_chain": certPEM(t, ca.Leaf(t, "site.example"))}}, &certB)
		}},
		{"replace the certificate", func() {
			r.must(t, 200, "PUT", "/frontends/https", jsonObj{"name": "https", "inbound_port": httpsPort, "backend_id": "web", "certificate_ids": []string{field(certB, "id")}}, nil)
			if got := fingerprint(httpsPort); got != field(certB, "fingerprint") {
				t.Errorf("the frontend presents %s, want the new certificate %s", got, field(certB, "fingerprint"))
			}
		}},
		{"add a frontend", func() {
			r.must(t, 200, "POST", lbPath+"/frontends", jsonObj{"name": "extra", "inbound_port": extraPort, "backend_id": "web"}, &fe)
			if !served(extraPort, "http") {
				t.Error("the new frontend does not serve")
			}
		}},
		{"remove a web server", func() {
			r.must(t, 200, "DELETE", b+"web/servers", jsonObj{"server_ip": []string{"127.0.0.7"}}, nil)
			for range 6 {
				if got := answer("/"); got == "web 127.0.0.7" {
					t.Error("a removed server still gets new requests")
				}
			}
		}},
		{"weigh another web server", func() { r.must(t, 200, "PUT", b+"web/servers/127.0.0.3/weight", jsonObj{"weight": 2}, nil) }},
		{"set the ACLs", func() {
			r.must(t, 200, "PUT", "/frontends/https/acls", jsonObj{"acls": []jsonObj{
				{"name": "block", "index": 0, "action": jsonObj{"type": "deny"}, "match": jsonObj{"ip_subnet": []string{"198.51.100.0/24"}}},
				{"name": "old", "index": 1, "action": jsonObj{"type": "redirect", "redirect": jsonObj{"type": "location", "target": "https://example.com/"}},
					"match": jsonObj{"http_filter": "path_begin", "http_filter_value": []string{"/old"}}},
			}}, nil)
			if got := answer("/old/page"); got != "302 https://example.com/" {
				t.Errorf("/old/page after the ACLs: %q", got)
			}
		}},
		{"change the route", func() {
			r.must(t, 200, "PUT", "/routes/"+field(route, "id"), jsonObj{"backend_id": "api", "match": jsonObj{"path_begin": "/api/"}}, nil)
		}},
		{"add a TCP server", func() { r.must(t, 200, "POST", b+"tcp/servers", jsonObj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"weigh a TCP server", func() { r.must(t, 200, "PUT", b+"tcp/servers/127.0.0.7/weight", jsonObj{"weight": 4}, nil) }},
		{"remove the added frontend", func() {
			r.must(t, 204, "DELETE", "/frontends/"+field(fe, "id"), nil, nil)
			testutil.Eventually(t, "the removed frontend to stop", func() bool { return !served(extraPort, "http") })
		}},
		{"update an ACL", func() {
			var l jsonObj
			r.must(t, 200, "GET", "/frontends/https/acls?order_by=name_asc", nil, &l)
			id := field(l["acls"].([]any)[0], "id")
			r.must(t, 200, "PUT", "/acls/"+id, jsonObj{"name": "block", "index": 0, "action": jsonObj{"type": "deny"}, "match": jsonObj{"ip_subnet": []string{"203.0.113.0/24"}}}, nil)
		}},
		{"delete the route", func() {
			r.must(t, 204, "DELETE", "/routes/"+field(route, "id"), nil, nil)
			if got := answer("/api/x"); got[:4] != "web " {
				t.Errorf("/api/x without the route: %q", got)
			}
		}},
		{"delete the old certificate", func() { r.must(t, 204, "DELETE", "/certificates/cert-a", nil, nil) }},
		{"remove the TCP server", func() { r.must(t, 200, "DELETE", b+"tcp/servers", jsonObj{"server_ip": []string{"127.0.0.7"}}, nil) }},
		{"drain a web server", func() {
			r.must(t, 200, "PUT", b+"web/servers/127.0.0.2/state", jsonObj{"admin_state": "drain"}, nil)
		}},
		{"make it ready again", func() {
			r.must(t, 200, "PUT", b+"web/servers/127.0.0.2/state", jsonObj{"admin_state": "ready"}, nil)
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
