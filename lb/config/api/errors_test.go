package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

// base has one backend and one frontend to refer to.
const base = `{
  "lb": {"id": "4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001", "name": "demo"},
  "backends": [{"id": "b1", "name": "web", "forward_protocol": "http", "forward_port": 8080, "pool": ["10.0.0.1"]}],
  "frontends": [{"id": "f1", "name": "web", "inbound_port": 8080, "backend_id": "b1"}]
}`

// TestBadInputs sends every kind of bad request: each is refused with the
// status and the argument named, and nothing changes: not the file, not
// the running document, and nothing is applied.
func TestBadInputs(t *testing.T) {
	e := start(t, base)
	ca := testutil.NewCA(t)
	goodBackend := `"name": "x", "forward_protocol": "http", "forward_port": 80`
	big := `{"name": "` + strings.Repeat("x", 1<<20) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		arg                      string
	}{
		{"malformed", "POST", lbPath + "/backends", `{"name":`, 400, "body"},
		{"trailing", "POST", lbPath + "/backends", `{` + goodBackend + `} {}`, 400, "body"},
		{"unknown field", "POST", lbPath + "/backends", `{` + goodBackend + `, "nmae": "y"}`, 400, "nmae"},
		{"mistyped", "POST", lbPath + "/backends", `{"name": "x", "forward_port": "80"}`, 400, "forward_port"},
		{"mistyped nested", "POST", lbPath + "/backends", `{` + goodBackend + `, "health_check": {"port": "x"}}`, 400, "health_check.port"},
		{"millis as string", "POST", lbPath + "/backends", `{` + goodBackend + `, "timeout_server": "5s"}`, 400, "timeout_server"},
		{"millis negative", "POST", lbPath + "/backends", `{` + goodBackend + `, "timeout_connect": -1}`, 400, "timeout_connect"},
		{"duration nested", "POST", lbPath + "/backends", `{` + goodBackend + `, "health_check": {"transient_check_delay": "5"}}`, 400, "health_check.transient_check_delay"},
		{"bad enum", "POST", lbPath + "/backends", `{"name": "x", "forward_protocol": "udp", "forward_port": 80}`, 400, "forward_protocol"},
		{"port range", "POST", lbPath + "/backends", `{"name": "x", "forward_port": 70000}`, 400, "forward_port"},
		{"bad server ip", "POST", lbPath + "/backends", `{` + goodBackend + `, "server_ip": ["10.0.0.300"]}`, 400, "server_ip"},
		{"servers not ips", "PUT", z + "/backends/b1/servers", `{"server_ip": ["nope"]}`, 400, "server_ip"},
		{"cookie without name", "PUT", z + "/backends/b1", `{` + goodBackend + `, "sticky_sessions": "cookie"}`, 400, "sticky_sessions_cookie_name"},
		{"health check retries", "PUT", z + "/backends/b1/healthcheck", `{"check_max_retries": -1}`, 400, "health_check.check_max_retries"},
		{"unknown backend", "POST", lbPath + "/frontends", `{"name": "f", "inbound_port": 81, "backend_id": "nope"}`, 400, "backend_id"},
		{"port taken", "POST", lbPath + "/frontends", `{"name": "f", "inbound_port": 8080, "backend_id": "b1"}`, 400, "inbound_port"},
		{"unknown certificate", "PUT", z + "/frontends/f1", `{"name": "f", "inbound_port": 8080, "backend_id": "b1", "certificate_ids": ["nope"]}`, 400, "certificate_ids"},
		{"bad chain", "POST", lbPath + "/certificates", `{"name": "c", "custom_certificate": {"certificate_chain": "garbage"}}`, 400, "custom_certificate.certificate_chain"},
		{"chain without key", "POST", lbPath + "/certificates", fmt.Sprintf(`{"name": "c", "custom_certificate": {"certificate_chain": %q}}`, string(ca.CertPEM())), 400, "custom_certificate.certificate_chain"},
		{"two certificate kinds", "POST", lbPath + "/certificates", `{"name": "c", "letsencrypt": {"common_name": "a.example"}, "custom_certificate": {"certificate_chain": "x"}}`, 400, "custom_certificate"},
		{"bad letsencrypt name", "POST", lbPath + "/certificates", `{"name": "c", "letsencrypt": {"common_name": "not a name"}}`, 400, "letsencrypt.common_name"},
		{"bad subnet", "POST", z + "/frontends/f1/acls", `{"name": "a", "index": 0, "action": {"type": "deny"}, "match": {"ip_subnet": ["10.0.0.0/33"]}}`, 400, "match.ip_subnet"},
		{"bad acl action", "POST", z + "/frontends/f1/acls", `{"name": "a", "index": 0, "action": {"type": "drop"}}`, 400, "action.type"},
		{"two route matches", "POST", z + "/routes", `{"frontend_id": "f1", "backend_id": "b1", "match": {"path_begin": "/a", "host_header": "x.example"}}`, 400, "match"},
		{"route unknown frontend", "POST", z + "/routes", `{"frontend_id": "nope", "backend_id": "b1", "match": {"path_begin": "/a"}}`, 400, "frontend_id"},
		{"bad webhook", "POST", z + "/subscribers", `{"name": "s", "webhook_config": {"uri": "ftp://x"}}`, 400, "webhook_config.uri"},
		{"subscribe to nothing", "POST", z + "/lb/4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001/subscribe", `{"subscriber_id": "nope"}`, 400, "subscriber_id"},
		{"bad ssl level", "PUT", lbPath, `{"name": "x", "ssl_compatibility_level": "ancient"}`, 400, "ssl_compatibility_level"},
		{"page size", "GET", lbPath + "/backends?page_size=1000", ``, 400, "page_size"},
		{"page", "GET", lbPath + "/backends?page=0", ``, 400, "page"},
		{"order", "GET", lbPath + "/backends?order_by=size", ``, 400, "order_by"},
		{"too big", "PUT", lbPath, big, 413, ""},
		{"missing backend", "PUT", z + "/backends/nope", `{` + goodBackend + `}`, 404, ""},
		{"missing frontend acls", "POST", z + "/frontends/nope/acls", `{"name": "a", "index": 0, "action": {"type": "deny"}}`, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, run, n := e.file(), e.running(), e.app.count()
			st, data := e.call(tc.method, tc.path, tc.body, nil)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, data)
			}
			var got struct {
				Type    string `json:"type"`
				Details []struct {
					ArgumentName string `json:"argument_name"`
					Reason       string `json:"reason"`
					HelpMessage  string `json:"help_message"`
				} `json:"details"`
			}
			if err := json.Unmarshal(data, &got); err != nil || got.Type == "" {
				t.Fatalf("error body %s: %v", data, err)
			}
			if tc.arg != "" {
				if got.Type != "invalid_arguments" || len(got.Details) == 0 {
					t.Fatalf("body %s", data)
				}
				names := []string{}
				for _, d := range got.Details {
					names = append(names, d.ArgumentName)
					if d.Reason == "" || d.HelpMessage == "" {
						t.Errorf("detail without reason or help: %+v", d)
					}
				}
				if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+tc.arg+" ") {
					t.Fatalf("arguments %v, want %s: %s", names, tc.arg, data)
				}
			}
			if !bytes.Equal(file, e.file()) || run != e.running() || n != e.app.count() {
				t.Fatal("a refused request changed something")
			}
		})
	}
}

func TestApplyFailures(t *testing.T) {
	e := start(t, base)
	file, run := e.file(), e.running()
	body := obj{"name": "f2", "inbound_port": 9000, "backend_id": "b1"}

	e.app.setFail(&os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE})
	st, data := e.call("POST", lbPath+"/frontends", body, nil)
	if st != http.StatusConflict || !bytes.Contains(data, []byte("port is in use")) {
		t.Fatalf("port in use: %d %s", st, data)
	}
	e.app.setFail(fmt.Errorf("acme: no answer"))
	if st, data := e.call("POST", lbPath+"/frontends", body, nil); st != http.StatusConflict {
		t.Fatalf("apply failure: %d %s", st, data)
	}
	e.app.setFail(nil)
	if !bytes.Equal(file, e.file()) || run != e.running() {
		t.Fatal("a write that failed to apply changed something")
	}
	e.must(200, "POST", lbPath+"/frontends", body, nil)
}

// TestOutsideEdit: after the file changes on disk, a write answers 409 and
// leaves the outside edit in place; after a reload, writes work again.
func TestOutsideEdit(t *testing.T) {
	e := start(t, base)
	outside := bytes.Replace(e.file(), []byte(`"name": "demo"`), []byte(`"name": "edited"`), 1)
	if bytes.Equal(outside, e.file()) {
		t.Fatal("the edit does not apply")
	}
	if err := os.WriteFile(e.path, outside, 0o600); err != nil {
		t.Fatal(err)
	}
	run := e.running()
	st, data := e.call("PUT", lbPath, obj{"name": "api"}, nil)
	if st != http.StatusConflict || !bytes.Contains(data, []byte("reload")) {
		t.Fatalf("write over an outside edit: %d %s", st, data)
	}
	if !bytes.Equal(outside, e.file()) || run != e.running() {
		t.Fatal("the refused write changed something")
	}
	if err := e.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	var lb obj
	e.must(200, "GET", lbPath, nil, &lb)
	if lb["name"] != "edited" {
		t.Fatalf("after reload: %v", lb)
	}
	e.must(200, "PUT", lbPath, obj{"name": "api"}, nil)
}

// downStore is a store whose Save fails as an unreachable shared store's.
type downStore struct {
	config.FileStore
	down bool
}

func (s *downStore) Save(ctx context.Context, d *config.Document, prev config.Version) (config.Version, error) {
	if s.down {
		return "", fmt.Errorf("etcd: %w", config.ErrUnavailable)
	}
	return s.FileStore.Save(ctx, d, prev)
}

func TestStoreUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	store := &downStore{FileStore: config.FileStore{Path: path}, down: true}
	e := startStore(t, path, store)
	file, run := e.file(), e.running()
	st, data := e.call("PUT", lbPath, obj{"name": "x"}, nil)
	if st != http.StatusServiceUnavailable || !bytes.Contains(data, []byte("unavailable")) {
		t.Fatalf("store down: %d %s", st, data)
	}
	if !bytes.Equal(file, e.file()) || run != e.running() {
		t.Fatal("a write to a store that is down changed something")
	}
	// The Manager undid the apply: what runs is the old document.
	if e.app.last.LB.Name != "demo" {
		t.Fatalf("running after the failed write: %q", e.app.last.LB.Name)
	}
}

// TestDocumentTooLarge: a write the store refuses as too large (etcd's
// --max-request-bytes) is a 413 and changes nothing.
func TestDocumentTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startStore(t, path, &limitStore{FileStore: config.FileStore{Path: path}, limit: 4000})
	file, run := e.file(), e.running()
	st, data := e.call("PUT", lbPath, obj{"name": "x", "description": strings.Repeat("z", 4000)}, nil)
	if st != http.StatusRequestEntityTooLarge || !bytes.Contains(data, []byte(`"invalid_request_error"`)) {
		t.Fatalf("a write over the store's limit: %d %s, want 413", st, data)
	}
	if !bytes.Equal(file, e.file()) || run != e.running() || e.app.last.LB.Name != "demo" {
		t.Fatal("a write over the store's limit changed something")
	}
	e.must(200, "PUT", lbPath, obj{"name": "x", "description": "short"}, nil)
}

// limitStore refuses documents over limit bytes, as etcd refuses requests
// over its --max-request-bytes.
type limitStore struct {
	config.FileStore
	limit int
}

func (s *limitStore) Save(ctx context.Context, d *config.Document, prev config.Version) (config.Version, error) {
	data, err := d.Marshal()
	if err != nil {
		return "", err
	}
	if len(data) > s.limit {
		return "", fmt.Errorf("store: request is too large: %w", config.ErrTooLarge)
	}
	return s.FileStore.Save(ctx, d, prev)
}

// blockingStore's Save waits for its caller to give up.
type blockingStore struct {
	config.FileStore
	entered chan struct{}
}

func (s *blockingStore) Save(ctx context.Context, d *config.Document, prev config.Version) (config.Version, error) {
	close(s.entered)
	<-ctx.Done()
	return "", fmt.Errorf("store: save: %w", ctx.Err())
}

// TestClientGoneDuringWrite: a client that disconnects while the store
// saves gets no 500 and logs no error; nothing changes.
func TestClientGoneDuringWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	store := &blockingStore{FileStore: config.FileStore{Path: path}, entered: make(chan struct{})}
	m := &config.Manager{Store: store, Applier: &applier{}, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := &api.Handler{Manager: m, Token: token, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "PUT", lbPath, strings.NewReader(`{"name": "x"}`))
	req.Header.Set("X-Auth-Token", token)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(rec, req) }()
	<-store.entered
	cancel()
	<-done
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "cancelled") {
		t.Fatalf("client gone during the write: %d %s; logs:\n%s", rec.Code, rec.Body, logs.String())
	}
	if d, _ := m.Current(); d.LB.Name != "demo" {
		t.Fatalf("running after the cancelled write: %q", d.LB.Name)
	}
}
