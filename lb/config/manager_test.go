package config_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lbkit/lbkit/lb/config"
)

// recorder is an Applier that keeps what it applied and fails on demand.
type recorder struct {
	applied []*config.Document
	fail    error
}

func (r *recorder) Apply(_ context.Context, d *config.Document) error {
	if r.fail != nil {
		return r.fail
	}
	r.applied = append(r.applied, d.Clone())
	return nil
}

func (r *recorder) last() *config.Document { return r.applied[len(r.applied)-1] }

func TestManagerUpdate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := &config.Manager{Store: &config.FileStore{Path: path}, Applier: rec}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// Invalid: nothing applied, nothing stored.
	_, err := m.Update(ctx, func(d *config.Document) error { d.Backends[0].ForwardPort = 0; return nil })
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(rec.applied) != 1 {
		t.Fatalf("invalid write: %v, %d applies", err, len(rec.applied))
	}
	// Fails to apply: nothing stored.
	rec.fail = errors.New("port in use")
	if _, err := m.Update(ctx, func(d *config.Document) error { d.LB.Name = "x"; return nil }); !errors.Is(err, config.ErrApply) {
		t.Fatalf("failed apply: %v", err)
	}
	rec.fail = nil
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused write changed the file")
	}
	// Accepted: applied, then stored, with a cookie secret.
	got, err := m.Update(ctx, func(d *config.Document) error {
		d.Backends[0].Pool = append(d.Backends[0].Pool, "127.0.0.4")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.last().Backends[0].Pool) != 3 || got.Secrets.StickyCookieSecret == "" {
		t.Fatal("write not applied")
	}
	stored, _, err := (&config.FileStore{Path: path}).Load(ctx)
	if err != nil || len(stored.Backends[0].Pool) != 3 {
		t.Fatalf("write not stored: %v", err)
	}
	// The file changed behind the manager: the next write conflicts and
	// the applier gets the running document back.
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(ctx, func(d *config.Document) error { d.LB.Name = "y"; return nil }); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("write over an outside change: %v, want ErrConflict", err)
	}
	if rec.last().LB.Name == "y" || len(rec.last().Backends[0].Pool) != 3 {
		t.Fatal("the applier was not restored to the running document")
	}
	// After a reload the write goes through.
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.last().Backends[0].Pool) != 2 {
		t.Fatal("reload did not apply the file")
	}
	if _, err := m.Update(ctx, func(d *config.Document) error { d.LB.Name = "y"; return nil }); err != nil {
		t.Fatal(err)
	}
	// A file that does not validate is refused by Reload; the running
	// document stays.
	if err := os.WriteFile(path, []byte(`{"backends":[{"id":"b","forward_port":0}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := len(rec.applied)
	if err := m.Reload(ctx); err == nil || len(rec.applied) != n || m.Status().LastError == "" {
		t.Fatalf("invalid file reloaded: %v", err)
	}
	if d, _ := m.Current(); d.LB.Name != "y" {
		t.Fatal("running document changed")
	}
}
