package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

const token = "3f0c2c55-0d39-4a29-a3c4-8d5c1f1b9e7a"

// seed is the document the tests start from: one load balancer, nothing
// configured yet.
const seed = `{"lb": {"id": "4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001", "name": "demo"}}`

const lbPath = "/lb/v1/zones/fr-par-1/lbs/4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001"

// applier records what it applied and fails on demand.
type applier struct {
	mu      sync.Mutex
	applied int
	fail    error
	last    *config.Document
}

func (a *applier) Apply(_ context.Context, d *config.Document) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.applied++
	a.last = d.Clone()
	return nil
}

func (a *applier) setFail(err error) {
	a.mu.Lock()
	a.fail = err
	a.mu.Unlock()
}

func (a *applier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

// stats is a StatsSource that reports every server running.
type stats struct{ m *config.Manager }

func (s stats) ServerStats(id string) ([]config.ServerStat, error) {
	d, _ := s.m.Current()
	var out []config.ServerStat
	for _, b := range d.Backends {
		if b.ID == id {
			for _, ip := range b.Pool {
				out = append(out, config.ServerStat{BackendID: id, IP: ip, ServerState: "running", LastHealthCheckStatus: "passed", Weight: 1})
			}
		}
	}
	return out, nil
}

type env struct {
	t     testing.TB
	url   string
	path  string
	app   *applier
	m     *config.Manager
	store config.Store

	mu        sync.Mutex
	responses [][]byte // every response body, in order
}

// bodies returns every response body e received.
func (e *env) bodies() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.responses)
}

// start serves a Handler over a FileStore holding doc.
func start(t testing.TB, doc string) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return startStore(t, path, &config.FileStore{Path: path})
}

func startStore(t testing.TB, path string, store config.Store) *env {
	t.Helper()
	app := &applier{}
	m := &config.Manager{Store: store, Applier: app}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &api.Handler{Manager: m, Stats: stats{m}, Token: token,
		IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, path: path, app: app, m: m, store: store}
}

// call sends one request with the token and decodes a JSON answer into out
// (when not nil); it returns the status and the raw body.
func (e *env) call(method, path string, body any, out any) (int, []byte) {
	e.t.Helper()
	return e.callAs(token, method, path, body, out)
}

func (e *env) callAs(tok, method, path string, body any, out any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.responses = append(e.responses, data)
	e.mu.Unlock()
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode, data
}

// must is call that fails the test on a status other than want.
func (e *env) must(want int, method, path string, body any, out any) []byte {
	e.t.Helper()
	st, data := e.call(method, path, body, out)
	if st != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, data)
	}
	return data
}

func (e *env) file() []byte {
	e.t.Helper()
	b, err := os.ReadFile(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// running returns the running document as JSON.
func (e *env) running() string {
	d, _ := e.m.Current()
	b, _ := json.Marshal(d)
	return string(b)
}

// certPEM returns a PEM chain with its private key for names.
func certPEM(t *testing.T, ca *testutil.CA, names ...string) string {
	t.Helper()
	cf, kf := testutil.WritePEM(t, ca.Leaf(t, names...))
	c, _ := os.ReadFile(cf)
	k, _ := os.ReadFile(kf)
	return string(c) + string(k)
}

// obj is a decoded JSON object.
type obj = map[string]any

func str(v any, path ...string) string {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func decodeBody(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
}
