package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// sameportServers listens on one port of each of ips and serves HTTP
// ("NAME IP") on them, or TCP echo after a "NAME IP\n" greeting.
func sameportServers(t *testing.T, name string, httpMode bool, ips ...string) int {
	t.Helper()
	var lns []net.Listener
	for attempt := 0; attempt < 20 && len(lns) < len(ips); attempt++ {
		for _, ln := range lns {
			ln.Close()
		}
		lns = nil
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, first)
		port := strconv.Itoa(first.Addr().(*net.TCPAddr).Port)
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
	}
	if len(lns) < len(ips) {
		t.Fatal("no common free port")
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i, ln := range lns {
		ip := ips[i]
		if httpMode {
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s %s", name, ip)
			})}
			wg.Go(func() { srv.Serve(ln) })
			t.Cleanup(func() { srv.Close() })
			continue
		}
		var mu sync.Mutex
		conns := map[net.Conn]bool{}
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
					defer c.Close()
					fmt.Fprintf(c, "%s %s\n", name, ip)
					io.Copy(c, c)
				})
			}
		})
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	return lns[0].Addr().(*net.TCPAddr).Port
}

// configRun is lbproxy running a configuration file.
type configRun struct {
	file  string
	admin string
}

// startConfig writes doc to a file and runs lbproxy -config on it with
// an admin listener, until the test ends.
func startConfig(t *testing.T, doc string) *configRun {
	t.Helper()
	file := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := withFlags(t, "-config", file, "-ip", "127.0.0.1", "-admin", "127.0.0.1:0", "-grace", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, pw); pw.Close() }()
	r := &configRun{file: file}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "admin endpoints on http://"); ok {
			r.admin = strings.TrimSuffix(a, "/")
		}
		if strings.HasPrefix(line, "lbproxy: frontend ") {
			go io.Copy(io.Discard, pr)
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			return r
		}
	}
	cancel()
	t.Fatalf("lbproxy did not start: %v", <-done)
	return nil
}

// stats reads /stats.
func (r *configRun) stats(t *testing.T) (doc struct {
	Frontends []struct{ Name string } `json:"frontends"`
	Backends  []struct{ Name string } `json:"backends"`
	Config    struct {
		Version   string `json:"version"`
		Reloads   int    `json:"reloads"`
		Failures  int    `json:"failures"`
		LastError string `json:"last_error"`
	} `json:"config"`
}) {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// edit writes doc to the file, sends SIGHUP and waits for lbproxy to run
// it.
func (r *configRun) edit(t *testing.T, doc string) {
	t.Helper()
	tmp := r.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(doc))
	want := hex.EncodeToString(sum[:16])
	testutil.Eventually(t, "the edited configuration running", func() bool {
		return r.stats(t).Config.Version == want
	})
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": 80, "pool": ["10.0.0.1"]}],
	  "frontends": [{"id": "f", "inbound_port": 80, "backend_id": "b"}]}`), 0o600)
	os.WriteFile(bad, []byte(`{"lb": {"id": "lb"},
	  "backends": [{"id": "b", "forward_port": 0, "pool": ["10.0.0.1", "nope"]}],
	  "frontends": [{"id": "f", "inbound_port": 80, "backend_id": "missing"}]}`), 0o600)
	var out strings.Builder
	if err := run(context.Background(), withFlags(t, "-config", good, "-check"), &out); err != nil {
		t.Errorf("-check of a valid file: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "configuration valid") {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	err := run(context.Background(), withFlags(t, "-config", bad, "-check"), &out)
	if !errors.Is(err, errInvalidConfig) {
		t.Errorf("-check of an invalid file: %v", err)
	}
	for _, want := range []string{`backend "b": forward_port`, `backend "b": pool`, `frontend "f": backend_id`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestConfigReloadUnderLoad edits the file 20 times and sends SIGHUP after
// each edit (servers added and removed, weights, ACLs, routes, a
// certificate replaced, a frontend added and one removed) while a bounded
// keep-alive HTTP load and a bounded TCP load run through two frontends
// that stay: no request fails and no connection is reset.
func TestConfigReloadUnderLoad(t *testing.T) {
	httpPort := sameportServers(t, "web", true, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	apiPort := sameportServers(t, "api", true, "127.0.0.6")
	tcpPort := sameportServers(t, "tcp", false, "127.0.0.7", "127.0.0.8", "127.0.0.9")
	ca := testutil.NewCA(t)
	certs := []string{certPEM(t, ca.Leaf(t, "secure.test")), certPEM(t, ca.Leaf(t, "secure.test"))}
	fHTTP, fTCP, fTLS, fExtra := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)

	webPools := []string{`["127.0.0.2", "127.0.0.3"]`, `["127.0.0.2", "127.0.0.3", "127.0.0.4"]`, `["127.0.0.3", "127.0.0.4", "127.0.0.5"]`, `["127.0.0.5", "127.0.0.2"]`}
	tcpPools := []string{`["127.0.0.7", "127.0.0.8"]`, `["127.0.0.8", "127.0.0.9"]`, `["127.0.0.7", "127.0.0.8", "127.0.0.9"]`}
	doc := func(i int) string {
		extraFrontend := ""
		if i%2 == 1 { // a frontend added, then removed again
			extraFrontend = fmt.Sprintf(`, {"id": "f-extra", "inbound_port": %d, "backend_id": "api"}`, fExtra)
		}
		acls := `[]`
		if i%3 == 1 {
			acls = `[{"id": "deny-admin", "frontend_id": "f-http", "index": 0,
			  "match": {"http_filter": "path_begin", "http_filter_value": ["/admin"]}, "action": {"type": "deny"}}]`
		}
		routes := `[]`
		if i%4 >= 2 {
			routes = `[{"id": "api", "frontend_id": "f-http", "backend_id": "api", "match": {"path_begin": "/api"}}]`
		}
		return fmt.Sprintf(`{"lb": {"id": "lb", "name": "load"},
		  "backends": [
		    {"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s,
		     "lbkit": {"servers": [{"ip": "127.0.0.5", "weight": %d}]}},
		    {"id": "api", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.6"]},
		    {"id": "tcp", "forward_protocol": "tcp", "forward_port": %d, "pool": %s}],
		  "frontends": [
		    {"id": "f-http", "inbound_port": %d, "backend_id": "web"},
		    {"id": "f-tcp", "inbound_port": %d, "backend_id": "tcp"},
		    {"id": "f-tls", "inbound_port": %d, "backend_id": "web", "certificate_ids": ["c"]} %s],
		  "acls": %s, "routes": %s,
		  "certificates": [{"id": "c", "certificate_chain": %s}]}`,
			httpPort, webPools[i%len(webPools)], 1+i%3, apiPort, tcpPort, tcpPools[i%len(tcpPools)],
			fHTTP, fTCP, fTLS, extraFrontend, acls, routes, strconv.Quote(certs[(i/5)%2]))
	}
	for i := range webPools { // every pool's weighted server must be listed in it
		if !strings.Contains(webPools[i], "127.0.0.5") {
			webPools[i] = strings.Replace(webPools[i], "]", `, "127.0.0.5"]`, 1)
		}
	}
	r := startConfig(t, doc(0))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var requests, failures, sessions, resets atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(counter *atomic.Int64, err error) {
		counter.Add(1)
		msg := err.Error()
		firstErr.CompareAndSwap(nil, &msg)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	const maxRequests = 20000 // per worker: the load is bounded in count and time
	for range 4 {             // keep-alive HTTP clients
		wg.Go(func() {
			tr := &http.Transport{MaxConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for n := 0; n < maxRequests; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/page", fHTTP))
				requests.Add(1)
				if err != nil {
					fail(&failures, err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "web ") {
					fail(&failures, fmt.Errorf("status %d body %q err %v", resp.StatusCode, body, err))
				}
			}
		})
	}
	for range 2 { // TCP sessions, each carrying several round trips
		wg.Go(func() {
			for n := 0; n < maxRequests; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if err := tcpSession(fmt.Sprintf("127.0.0.1:%d", fTCP), 20); err != nil {
					fail(&resets, err)
				}
				sessions.Add(1)
			}
		})
	}
	// A long TCP session open across every edit.
	long, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fTCP))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	longR := bufio.NewReader(long)
	long.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := longR.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for i := 1; i <= 20; i++ {
		r.edit(t, doc(i))
		fmt.Fprintf(long, "edit %d\n", i)
		if line, err := longR.ReadString('\n'); err != nil || line != fmt.Sprintf("edit %d\n", i) {
			t.Fatalf("the long session after edit %d: %q, %v", i, line, err)
		}
		// The certificate in use is the one the edit wrote.
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fTLS), &tls.Config{ServerName: "secure.test", RootCAs: roots})
		if err != nil {
			t.Fatalf("edit %d: TLS frontend: %v", i, err)
		}
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
		conn.Close()
		block, _ := pem.Decode([]byte(certs[(i/5)%2]))
		want, _ := x509.ParseCertificate(block.Bytes)
		if serial.Cmp(want.SerialNumber) != 0 {
			t.Errorf("edit %d: the TLS frontend serves certificate %v, want %v", i, serial, want.SerialNumber)
		}
		_, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fExtra), time.Second)
		if (err == nil) != (i%2 == 1) {
			t.Errorf("edit %d: the added-and-removed frontend accepts: %v", i, err == nil)
		}
	}
	close(stop)
	wg.Wait()
	st := r.stats(t)
	if st.Config.Failures != 0 || st.Config.LastError != "" {
		t.Errorf("reload failures: %+v", st.Config)
	}
	t.Logf("%d requests, %d TCP sessions during 20 reloads", requests.Load(), sessions.Load())
	if requests.Load() == 0 || sessions.Load() == 0 {
		t.Fatal("no load ran")
	}
	if failures.Load() != 0 || resets.Load() != 0 {
		t.Errorf("%d failed requests, %d broken TCP sessions; first: %s", failures.Load(), resets.Load(), *firstErr.Load())
	}
}

// tcpSession opens a session through addr, reads the greeting and checks
// n echoed round trips, then closes.
func tcpSession(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "tcp ") {
		return fmt.Errorf("greeting %q: %v", line, err)
	}
	for i := range n {
		msg := fmt.Sprintf("m%d\n", i)
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line != msg {
			return fmt.Errorf("echo %q, want %q", line, msg)
		}
	}
	return nil
}

// certPEM is cert's chain and key as a certificate_chain.
func certPEM(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	var b strings.Builder
	for _, der := range cert.Certificate {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: key})
	return b.String()
}
