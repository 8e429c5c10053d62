package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

const apiToken = "0b1f6a3e-2f4d-4c89-9a51-6c1d2e7f8a90"

// apiRun is lbproxy -config with -admin and a token: the REST API.
type apiRun struct {
	file, admin string
	api         string // the zoned API's root

	mu        sync.Mutex
	responses [][]byte // every body call received
}

// startAPI runs lbproxy -config on doc with the admin listener and the
// token, until the test ends; it returns once the admin listener serves.
func startAPI(t *testing.T, doc string) *apiRun {
	t.Helper()
	dir := t.TempDir()
	file, tok := filepath.Join(dir, "lb.json"), filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := withFlags(t, "-config", file, "-ip", "127.0.0.1", "-admin", "127.0.0.1:0", "-admin-token-file", tok, "-grace", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "admin endpoints on http://"); ok {
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			admin := strings.TrimSuffix(a, "/")
			return &apiRun{file: file, admin: admin, api: "http://" + admin + "/lb/v1/zones/fr-par-1"}
		}
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-done)
	return nil
}

// freeTCPPort returns a port free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// curl runs the curl binary with args and returns its HTTP status and body.
func curl(t *testing.T, bin string, args ...string) (int, []byte) {
	t.Helper()
	args = append([]string{"-sS", "--max-time", "10", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	i := bytes.LastIndexByte(out, '\n')
	status, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl %s: %q", strings.Join(args, " "), out)
	}
	return status, out[:i]
}

// call sends one API request with curl, the body (JSON) from a file as
// the README's examples do, and decodes the answer into out.
func (r *apiRun) call(t *testing.T, bin string, want int, method, path string, body any, out any) {
	t.Helper()
	args := []string{"-X", method, "-H", "X-Auth-Token: " + apiToken}
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "body.json")
		if err := os.WriteFile(f, j, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@"+f)
	}
	status, data := curl(t, bin, append(args, r.api+path)...)
	r.mu.Lock()
	r.responses = append(r.responses, data)
	r.mu.Unlock()
	if status != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

type jsonObj = map[string]any

func field(v any, path ...string) string {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// TestAPITutorialWithCurl does the seed's tutorial against lbproxy with the
// real curl: a backend with two servers and a TCP health check, a custom
// certificate, an HTTPS frontend, an ACL, a route, then the statistics,
// with HTTPS traffic through the created certificate checked after each
// step (README.md's "REST API" section is this test).
func TestAPITutorialWithCurl(t *testing.T) {
	testutil.CheckLeaks(t)
	bin := testutil.LookBinary(t, "curl", "curl")
	ca := testutil.NewCA(t)
	caFile := ca.WriteCAFile(t)
	webPort := sameportServers(t, "web", true, "127.0.0.2", "127.0.0.3")
	apiPort := sameportServers(t, "api", true, "127.0.0.4")
	httpsPort := freeTCPPort(t)
	r := startAPI(t, `{"lb": {"name": "demo"}}`)
	site := fmt.Sprintf("https://site.example:%d", httpsPort)
	resolve := fmt.Sprintf("site.example:%d:127.0.0.1", httpsPort)
	// visit fetches path on a new connection through the frontend with
	// curl, verifying the certificate against the test CA.
	visit := func(path string) (int, string) {
		status, body := curl(t, bin, "--cacert", caFile, "--resolve", resolve, site+path)
		return status, string(body)
	}

	// Without the token: refused, and nothing changes.
	if st, _ := curl(t, bin, r.api+"/lbs"); st != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", st)
	}
	if st, _ := curl(t, bin, "-H", "X-Auth-Token: nope", r.api+"/lbs"); st != http.StatusForbidden {
		t.Fatalf("with a wrong token: %d", st)
	}

	var lbs jsonObj
	r.call(t, bin, 200, "GET", "/lbs", nil, &lbs)
	lb := lbs["lbs"].([]any)[0]
	lbID := field(lb, "id")

	// 1. A backend: two servers, a TCP health check.
	var web jsonObj
	r.call(t, bin, 200, "POST", "/lbs/"+lbID+"/backends", jsonObj{
		"name": "web", "forward_protocol": "http", "forward_port": webPort,
		"server_ip":    []string{"127.0.0.2", "127.0.0.3"},
		"health_check": jsonObj{"check_max_retries": 3, "tcp_config": jsonObj{}, "check_delay": 1000},
	}, &web)
	webID := field(web, "id")
	running := func(backendID string, want int) func() bool {
		return func() bool {
			var st jsonObj
			r.call(t, bin, 200, "GET", "/lbs/"+lbID+"/backend-stats?backend_id="+backendID, nil, &st)
			n := 0
			for _, s := range st["backend_servers_stats"].([]any) {
				if field(s, "server_state") == "running" && field(s, "last_health_check_status") == "passed" {
					n++
				}
			}
			return n == want
		}
	}
	waitFor(t, "both web servers checked up", running(webID, 2))

	// 2. A certificate, custom.
	var crt jsonObj
	r.call(t, bin, 200, "POST", "/lbs/"+lbID+"/certificates", jsonObj{
		"name": "site", "custom_certificate": jsonObj{"certificate_chain": certPEM(t, ca.Leaf(t, "site.example"))},
	}, &crt)
	if crt["status"] != "ready" || crt["common_name"] != "site.example" {
		t.Fatalf("certificate: %v", crt)
	}

	// 3. An HTTPS frontend with it: traffic flows to both servers.
	var fe jsonObj
	r.call(t, bin, 200, "POST", "/lbs/"+lbID+"/frontends", jsonObj{
		"name": "https", "inbound_port": httpsPort, "backend_id": webID, "certificate_ids": []string{field(crt, "id")},
	}, &fe)
	feID := field(fe, "id")
	seen := map[string]bool{}
	for range 6 {
		st, body := visit("/")
		if st != 200 {
			t.Fatalf("GET / through the new frontend: %d %s", st, body)
		}
		seen[body] = true
	}
	if !seen["web 127.0.0.2"] || !seen["web 127.0.0.3"] {
		t.Fatalf("answers %v, want both servers", seen)
	}

	// 4. An ACL: /admin is denied, the rest still served.
	r.call(t, bin, 200, "POST", "/frontends/"+feID+"/acls", jsonObj{
		"name": "no-admin", "index": 0, "action": jsonObj{"type": "deny"},
		"match": jsonObj{"http_filter": "path_begin", "http_filter_value": []string{"/admin"}},
	}, nil)
	if st, _ := visit("/admin/x"); st != http.StatusForbidden {
		t.Fatalf("/admin/x after the ACL: %d", st)
	}
	if st, _ := visit("/"); st != 200 {
		t.Fatalf("/ after the ACL: %d", st)
	}

	// 5. A second backend and a route to it for /api.
	var apiBE jsonObj
	r.call(t, bin, 200, "POST", "/lbs/"+lbID+"/backends", jsonObj{
		"name": "api", "forward_protocol": "http", "forward_port": apiPort, "server_ip": []string{"127.0.0.4"},
	}, &apiBE)
	r.call(t, bin, 200, "POST", "/routes", jsonObj{
		"frontend_id": feID, "backend_id": field(apiBE, "id"), "match": jsonObj{"path_begin": "/api"},
	}, nil)
	if st, body := visit("/api/v1"); st != 200 || body != "api 127.0.0.4" {
		t.Fatalf("/api/v1 after the route: %d %q", st, body)
	}
	if _, body := visit("/"); !strings.HasPrefix(body, "web ") {
		t.Fatalf("/ after the route: %q", body)
	}

	// 6. The statistics: every server running.
	var st jsonObj
	r.call(t, bin, 200, "GET", "/lbs/"+lbID+"/backend-stats", nil, &st)
	if st["total_count"] != 3.0 {
		t.Fatalf("backend-stats: %v", st)
	}

	// 7. Drain one server: new connections go to the other.
	r.call(t, bin, 200, "PUT", "/backends/"+webID+"/servers/127.0.0.2/state", jsonObj{"admin_state": "drain"}, nil)
	for range 4 {
		if _, body := visit("/"); body != "web 127.0.0.3" {
			t.Fatalf("with 127.0.0.2 draining: %q", body)
		}
	}
	r.call(t, bin, 200, "PUT", "/backends/"+webID+"/servers/127.0.0.2/state", jsonObj{"admin_state": "ready"}, nil)

	// Everything is in the file.
	data, err := os.ReadFile(r.file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{feID, webID, "/api", "no-admin", "PRIVATE KEY", "sticky_cookie_secret"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the file lacks %q", want)
		}
	}

	// No answer of the run carries a secret: their names, the cookie
	// secret the first write drew, a private key.
	var stored struct {
		Secrets struct {
			StickyCookieSecret string `json:"sticky_cookie_secret"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(data, &stored); err != nil || len(stored.Secrets.StickyCookieSecret) < 16 {
		t.Fatalf("the file's secrets: %v %+v", err, stored.Secrets)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.responses) < 10 {
		t.Fatalf("%d answers recorded, want the whole run", len(r.responses))
	}
	for i, body := range r.responses {
		for _, secret := range []string{"sticky_cookie_secret", "session_ticket_secret", stored.Secrets.StickyCookieSecret, "PRIVATE KEY"} {
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("answer %d carries %q: %s", i, secret, body)
			}
		}
	}
}

// waitFor polls cond every 100 ms for up to 10 s: each poll runs curl.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
