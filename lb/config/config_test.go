package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

const tutorial = `{
  "lb": {"id": "lb-1", "name": "demo"},
  "backends": [{
    "id": "b-web", "name": "web", "forward_protocol": "http", "forward_port": 8080,
    "pool": ["127.0.0.2", "127.0.0.3"],
    "health_check": {"tcp_config": {}, "check_delay": 2000},
    "timeout_queue": "1.5s"
  }],
  "frontends": [{"id": "f-web", "name": "web", "inbound_port": 8443, "backend_id": "b-web"}],
  "acls": [{"id": "a-1", "frontend_id": "f-web", "index": 0,
    "match": {"ip_subnet": ["10.0.0.0/8"]}, "action": {"type": "deny"}}],
  "routes": [{"id": "r-1", "frontend_id": "f-web", "backend_id": "b-web", "match": {"path_begin": "/api"}}]
}`

func TestLoadAppliesDefaults(t *testing.T) {
	d, err := config.Load([]byte(tutorial))
	if err != nil {
		t.Fatal(err)
	}
	b := d.Backends[0]
	if got := b.TimeoutConnect.D(); got != config.DefaultTimeoutConnect {
		t.Errorf("timeout_connect %v, want %v", got, config.DefaultTimeoutConnect)
	}
	if got := b.HealthCheck.CheckDelay.D(); got != 2*time.Second {
		t.Errorf("check_delay %v, want 2s as given", got)
	}
	if got := b.TimeoutQueue.D(); got != 1500*time.Millisecond {
		t.Errorf("timeout_queue %v, want 1.5s as given", got)
	}
	if b.HealthCheck.Port != 0 || b.ForwardPortAlgorithm != config.AlgorithmRoundRobin || *b.MaxRetries != 3 {
		t.Errorf("defaults not applied: %+v", b)
	}
	if b.RedispatchAttemptCount != nil {
		t.Error("redispatch_attempt_count must stay unset")
	}
	if d.ACLs[0].Action.Type != config.ACLDeny || d.Frontends[0].TimeoutClient.D() != config.DefaultTimeoutClient {
		t.Error("frontend or ACL defaults wrong")
	}
	out, err := json.Marshal(d.Backends[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"timeout_connect":5000`, `"timeout_queue":"1.500000000s"`, `"check_delay":2000`, `"transient_check_delay":"0.500000000s"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoding lacks %s: %s", want, out)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct{ name, edit, field string }{
		{"unknown field", `"forward_port": 8080,`, ""},
		{"port range", `"forward_port": 70000`, "forward_port"},
		{"bad enum", `"forward_protocol": "udp"`, "forward_protocol"},
		{"missing backend", `"backend_id": "nope"`, "backend_id"},
		{"bad ip", `"pool": ["127.0.0.2", "not-an-ip"]`, "pool"},
		{"duration type", `"check_delay": "2s"`, ""},
		{"bad subnet", `"ip_subnet": ["10.0.0.0/33"]`, "match.ip_subnet"},
		{"two matches", `"match": {"path_begin": "/api", "host_header": "x.example"}`, "match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := edit(t, tc.name, tc.edit)
			_, err := config.Load([]byte(doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.field == "" {
				return
			}
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			for _, f := range ve.Fields {
				if f.Field == tc.field {
					return
				}
			}
			t.Fatalf("no error names %s: %v", tc.field, err)
		})
	}
}

// edit replaces, in the tutorial document, the field the change names.
func edit(t *testing.T, name, change string) string {
	t.Helper()
	repl := map[string][2]string{
		"unknown field":   {`"forward_port": 8080,`, `"forward_port": 8080, "colour": "red",`},
		"port range":      {`"forward_port": 8080`, change},
		"bad enum":        {`"forward_protocol": "http"`, change},
		"missing backend": {`"backend_id": "b-web"}`, change + "}"},
		"bad ip":          {`"pool": ["127.0.0.2", "127.0.0.3"]`, change},
		"duration type":   {`"check_delay": 2000`, change},
		"bad subnet":      {`"ip_subnet": ["10.0.0.0/8"]`, change},
		"two matches":     {`"match": {"path_begin": "/api"}`, change},
	}[name]
	if !strings.Contains(tutorial, repl[0]) {
		t.Fatalf("%q not in the document", repl[0])
	}
	return strings.Replace(tutorial, repl[0], repl[1], 1)
}

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &config.FileStore{Path: path, PollInterval: 10 * time.Millisecond}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := s.Watch(watchCtx)
	d, v1, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.LB.Name = "renamed"
	v2, err := s.Save(ctx, d, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, d, v1); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("save over a stale version: %v, want ErrConflict", err)
	}
	got, v, err := s.Load(ctx)
	if err != nil || v != v2 || got.LB.Name != "renamed" {
		t.Fatalf("load after save: %v %v %q", err, v == v2, got.LB.Name)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	// A write by another program is signalled; the store's own is not.
	select {
	case <-changes:
		t.Fatal("own write signalled")
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("outside write not signalled")
	}
	if _, err := s.Save(ctx, d, v2); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("save after an outside write: %v, want ErrConflict", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestFileStoreTooLarge: a document over MaxDocumentBytes, which Load
// would refuse, is not written.
func TestFileStoreTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &config.FileStore{Path: path}
	d, v, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d.LB.Description = strings.Repeat("x", config.MaxDocumentBytes)
	if _, err := s.Save(context.Background(), d, v); !errors.Is(err, config.ErrTooLarge) {
		t.Fatalf("Save of a document over MaxDocumentBytes: %v, want ErrTooLarge", err)
	}
	if data, _ := os.ReadFile(path); string(data) != tutorial {
		t.Fatal("the file changed")
	}
}
