package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/etcdstore"
)

// fleetMember is one lbproxy of a fleet sharing a document in etcd.
type fleetMember struct {
	ip    string
	front string // the frontend's address, ip:port
	admin string // the admin listener's address
	api   string // the zoned API's root
}

// commonPort returns a port free on each of ips a moment ago.
func commonPort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", ips[0]+":0")
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
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == len(ips) {
			return port
		}
	}
	t.Fatal("no common free port")
	return 0
}

// startFleet runs one lbproxy -config etcd://... per address of ips, each
// with its frontends and its admin listener (the API) on the same ports of
// its own address, all at once (they race to store the seed), until the
// test ends.
func startFleet(t *testing.T, srv *testservers.Server, seed string, frontPort int, ips ...string) []*fleetMember {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(dir, "seed.json")
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	adminPort := commonPort(t, ips...)
	members := make([]*fleetMember, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		admin := net.JoinHostPort(ip, strconv.Itoa(adminPort))
		cfg := withFlags(t, "-config", "etcd://"+srv.Addr+"/lbkit/fleet", "-config-etcd-seed", seedFile,
			"-config-etcd-timeout", "1s", "-ip", ip, "-admin", admin, "-admin-token-file", tok, "-grace", "2s")
		cfg.etcd.probeInterval = 100 * time.Millisecond
		cfg.checkInterval = time.Hour // the accept self-check is not what this test looks at
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- run(ctx, cfg, pw); pw.Close() }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "lbproxy: frontend ") {
					go io.Copy(io.Discard, pr)
					members[i] = &fleetMember{ip: ip, front: net.JoinHostPort(ip, strconv.Itoa(frontPort)), admin: admin,
						api: "http://" + admin + "/lb/v1/zones/fr-par-1"}
					return
				}
			}
		})
	}
	wg.Wait()
	for i, m := range members {
		if m == nil {
			t.Fatalf("lbproxy on %s did not start", ips[i])
		}
	}
	return members
}

// call sends one API request and returns its status and body.
func (m *fleetMember) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, m.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", apiToken)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// admin GETs an admin path and returns its status and body.
func (m *fleetMember) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+m.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// version returns the version of the document the member runs.
func (m *fleetMember) version(t *testing.T) string {
	t.Helper()
	_, body := m.get(t, "/stats")
	var st struct {
		Config struct {
			Version string `json:"version"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	return st.Config.Version
}

// metric returns the value of an unlabelled metric in /metrics.
func (m *fleetMember) metric(t *testing.T, name string) string {
	t.Helper()
	_, body := m.get(t, "/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}

// reaches reports whether requests through the member's frontend reach
// the server at ip within a bounded number of tries.
func (m *fleetMember) reaches(client *http.Client, ip string) bool {
	for range 20 {
		resp, err := client.Get("http://" + m.front + "/")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if string(body) == "web "+ip {
			return true
		}
	}
	return false
}

// converged waits until every member runs the document stored in etcd.
func converged(t *testing.T, store *etcdstore.Store, members []*fleetMember) *lbconfig.Document {
	t.Helper()
	doc, v, err := store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		testutil.Eventually(t, m.ip+" runs the stored version", func() bool { return m.version(t) == string(v) })
	}
	return doc
}

// TestEtcdFleet runs three lbproxy instances on 127.0.0.2, .3 and .4 (the
// same ports) on one document in etcd: a change through the API of one
// reaches all three, traffic included; concurrent writes through two
// instances each land or get 409, never lost; and with etcd stopped and
// restarted under load no request fails, /healthz and /metrics say the
// store is down meanwhile, writes get 503, and the fleet catches up after.
func TestEtcdFleet(t *testing.T) {
	srv := testservers.Etcd(t)
	servers := []string{"127.0.0.10", "127.0.0.11", "127.0.0.12"}
	fwd := sameportServers(t, "web", true, servers...)
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	front := commonPort(t, ips...)
	seed := fmt.Sprintf(`{"lb": {"id": "lb-fleet", "name": "fleet"},
	  "backends": [{"id": "b-web", "name": "web", "forward_protocol": "http", "forward_port": %d,
	    "pool": ["127.0.0.10"], "health_check": {"tcp_config": {}, "check_delay": 500}}],
	  "frontends": [{"id": "f-web", "name": "web", "inbound_port": %d, "backend_id": "b-web"}]}`, fwd, front)
	fleet := startFleet(t, srv, seed, front, ips...)
	store, err := etcdstore.New(etcdstore.Options{Endpoints: []string{srv.Addr}, Key: "/lbkit/fleet",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	// One seed landed; all three run it and serve it.
	doc := converged(t, store, fleet)
	if doc.LB.Name != "fleet" || doc.Secrets.StickyCookieSecret == "" {
		t.Fatalf("stored seed: %+v", doc.LB)
	}
	for _, m := range fleet {
		if !m.reaches(client, "127.0.0.10") {
			t.Fatalf("%s does not serve the seed's server", m.ip)
		}
	}

	// A change through the first instance's API reaches all three.
	if st, body := fleet[0].call(t, "POST", "/backends/b-web/servers", jsonObj{"server_ip": []string{"127.0.0.11"}}); st != http.StatusOK {
		t.Fatalf("add a server: %d %s", st, body)
	}
	converged(t, store, fleet)
	for _, m := range fleet {
		testutil.Eventually(t, m.ip+" sends traffic to the added server", func() bool { return m.reaches(client, "127.0.0.11") })
	}

	// Concurrent writers on two instances, round after round: each write
	// lands or gets 409, and the stored pool holds exactly those that
	// landed.
	var landed []string
	conflicts := 0
	for round := range 10 {
		writers := fleet[:2]
		statuses := make([]int, len(writers))
		added := make([]string, len(writers))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, m := range writers {
			added[i] = fmt.Sprintf("127.0.1.%d", 2*round+i+1) // nothing listens: down after its checks
			wg.Go(func() {
				<-start
				statuses[i], _ = m.call(t, "POST", "/backends/b-web/servers", jsonObj{"server_ip": []string{added[i]}})
			})
		}
		close(start)
		wg.Wait()
		for i, st := range statuses {
			switch st {
			case http.StatusOK:
				landed = append(landed, added[i])
			case http.StatusConflict:
				conflicts++
			default:
				t.Fatalf("round %d: writer %s: status %d", round, writers[i].ip, st)
			}
		}
		doc := converged(t, store, fleet)
		pool := doc.Backends[0].Pool
		for _, ip := range landed {
			if !slices.Contains(pool, ip) {
				t.Fatalf("round %d: %s was acknowledged but is not stored: %v", round, ip, pool)
			}
		}
		if want := 2 + len(landed); len(pool) != want {
			t.Fatalf("round %d: stored pool %v, want 127.0.0.10, 127.0.0.11 and %v", round, pool, landed)
		}
	}
	t.Logf("concurrent writers: %d writes landed, %d got 409", len(landed), conflicts)
	if st, body := fleet[2].call(t, "PUT", "/backends/b-web/servers", jsonObj{"server_ip": []string{"127.0.0.10", "127.0.0.11"}}); st != http.StatusOK {
		t.Fatalf("set the servers: %d %s", st, body)
	}
	converged(t, store, fleet)

	// etcd stops and comes back under a load on all three instances.
	var sent, failed atomic.Int64
	var firstFailure atomic.Pointer[string]
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for _, m := range fleet {
		load.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			deadline := time.Now().Add(60 * time.Second)
			for n := 0; n < 20000 && time.Now().Before(deadline); n++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				sent.Add(1)
				resp, err := c.Get("http://" + m.front + "/")
				var body []byte
				if err == nil {
					body, err = io.ReadAll(io.LimitReader(resp.Body, 1024))
					resp.Body.Close()
					if err == nil && (resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "web 127.0.0.1")) {
						err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
					}
				}
				if err != nil {
					failed.Add(1)
					msg := m.ip + ": " + err.Error()
					firstFailure.CompareAndSwap(nil, &msg)
				}
				time.Sleep(2 * time.Millisecond) // a steady load, not a flood of the two cores
			}
		})
	}
	before := sent.Load()
	testutil.Eventually(t, "load running", func() bool { return sent.Load() > before+30 })

	atStop := sent.Load()
	srv.Stop(t)
	for _, m := range fleet {
		testutil.Eventually(t, m.ip+" reports the store down", func() bool {
			st, body := m.get(t, "/healthz")
			return st == http.StatusOK && strings.Contains(body, "config store unavailable")
		})
		if v := m.metric(t, "lbkit_config_store_up"); v != "0" {
			t.Fatalf("%s: lbkit_config_store_up %s while etcd is down", m.ip, v)
		}
		testutil.Eventually(t, m.ip+" counts a failed reload", func() bool {
			v, _ := strconv.ParseFloat(m.metric(t, "lbkit_config_reload_failures_total"), 64)
			return v >= 1
		})
	}
	if st, body := fleet[1].call(t, "POST", "/backends/b-web/servers", jsonObj{"server_ip": []string{"127.0.0.12"}}); st != http.StatusServiceUnavailable {
		t.Fatalf("write while etcd is down: %d %s, want 503", st, body)
	}
	duringOutage := sent.Load()
	srv.Start(t)
	for _, m := range fleet {
		testutil.Eventually(t, m.ip+" reports the store back", func() bool {
			st, body := m.get(t, "/healthz")
			return st == http.StatusOK && !strings.Contains(body, "config store unavailable") && m.metric(t, "lbkit_config_store_up") == "1"
		})
	}
	// Writes work again and reach everyone.
	if st, body := fleet[1].call(t, "POST", "/backends/b-web/servers", jsonObj{"server_ip": []string{"127.0.0.12"}}); st != http.StatusOK {
		t.Fatalf("write once etcd is back: %d %s", st, body)
	}
	converged(t, store, fleet)
	for _, m := range fleet {
		testutil.Eventually(t, m.ip+" sends traffic to the server added after the outage", func() bool { return m.reaches(client, "127.0.0.12") })
	}
	close(stopLoad)
	load.Wait()
	if f := firstFailure.Load(); f != nil {
		t.Fatalf("%d of %d requests failed; the first: %s", failed.Load(), sent.Load(), *f)
	}
	if duringOutage <= atStop {
		t.Fatal("no load while etcd was down")
	}
	t.Logf("load: %d requests, none failed", sent.Load())
}
