package config_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// recorder is an Applier that keeps what it applied and fails on demand.
type recorder struct {
	applied  []*config.Document
	fail     error
	failNext []error // the outcomes of the next applies, in order
}

func (r *recorder) Apply(_ context.Context, d *config.Document) error {
	if len(r.failNext) > 0 {
		err := r.failNext[0]
		r.failNext = r.failNext[1:]
		if err != nil {
			return err
		}
	}
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

// flaky is an Applier whose next fails applies fail with a port in use.
type flaky struct {
	mu      sync.Mutex
	fails   int
	applied []string // the applied documents' load balancer names
}

func (f *flaky) Apply(_ context.Context, d *config.Document) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return fmt.Errorf("listen: %w", syscall.EADDRINUSE)
	}
	f.applied = append(f.applied, d.LB.Name)
	return nil
}

// TestManagerRetriesFailedReload: a stored document that fails to apply
// (a port in use) is tried again until it runs, without another change
// of the file or a Reload from outside; then writes go through again.
func TestManagerRetriesFailedReload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	app := &flaky{}
	m := &config.Manager{
		Store:         &config.FileStore{Path: path, PollInterval: 10 * time.Millisecond},
		Applier:       app,
		Logger:        slog.New(slog.DiscardHandler),
		RetryInterval: 10 * time.Millisecond, MaxRetryInterval: 40 * time.Millisecond,
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, v1 := m.Current()
	done := make(chan struct{})
	go func() { defer close(done); m.Watch(ctx) }()
	defer func() { cancel(); <-done }()

	// Another program edits the file; the next three applies fail.
	app.mu.Lock()
	app.fails = 3
	app.mu.Unlock()
	edited := strings.Replace(tutorial, `"name": "demo"`, `"name": "edited"`, 1)
	if edited == tutorial {
		t.Fatal("the tutorial has no load balancer name to edit")
	}
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the edited file runs", func() bool {
		d, v := m.Current()
		return v != v1 && d.LB.Name == "edited"
	})
	st := m.Status()
	if st.Failures != 3 || st.LastError != "" {
		t.Fatalf("status after the retries: %+v, want 3 failures and no error left", st)
	}
	app.mu.Lock()
	if app.fails != 0 || app.applied[len(app.applied)-1] != "edited" {
		t.Fatalf("applier: %d failures left, applied %q", app.fails, app.applied)
	}
	app.mu.Unlock()
	// The running version is the stored one: a write is not a conflict.
	if _, err := m.Update(ctx, func(d *config.Document) error { d.LB.Name = "written"; return nil }); err != nil {
		t.Fatalf("write after the retried reload: %v", err)
	}
}

// TestManagerNotStarted: Update before Start answers ErrNotStarted.
func TestManagerNotStarted(t *testing.T) {
	m := &config.Manager{Store: &config.FileStore{Path: filepath.Join(t.TempDir(), "none.json")}, Applier: &recorder{}}
	if _, err := m.Update(context.Background(), func(*config.Document) error { return nil }); !errors.Is(err, config.ErrNotStarted) {
		t.Fatalf("Update before Start: %v, want ErrNotStarted", err)
	}
	if d, _ := m.Current(); d != nil {
		t.Fatal("Current before Start returned a document")
	}
}

// TestEnsureSecrets: a document without a sticky-cookie secret gets a
// fresh random one; one with a secret keeps it.
func TestEnsureSecrets(t *testing.T) {
	var a, b config.Document
	a.EnsureSecrets()
	b.EnsureSecrets()
	if len(a.Secrets.StickyCookieSecret) != 43 || a.Secrets.StickyCookieSecret == b.Secrets.StickyCookieSecret {
		t.Fatalf("secrets %q and %q: want two different 32-byte secrets", a.Secrets.StickyCookieSecret, b.Secrets.StickyCookieSecret)
	}
	kept := a.Secrets.StickyCookieSecret
	a.EnsureSecrets()
	if a.Secrets.StickyCookieSecret != kept {
		t.Fatal("EnsureSecrets replaced an existing secret")
	}
}

// unavailable is a Store whose Save fails and changes nothing.
type unavailable struct{ config.Store }

func (unavailable) Save(context.Context, *config.Document, config.Version) (config.Version, error) {
	return "", config.ErrUnavailable
}

// TestManagerUndoFails: a write that cannot be stored and whose undo fails
// leaves the Applier on the unsaved document; the manager says so and its
// next reload applies the stored document although its version did not
// change.
func TestManagerUndoFails(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(tutorial), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := &config.Manager{Store: unavailable{&config.FileStore{Path: path}}, Applier: rec}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	undo := errors.New("undo refused")
	rec.failNext = []error{nil, undo} // the write applies, its undo fails
	if _, err := m.Update(ctx, func(d *config.Document) error { d.LB.Name = "unsaved"; return nil }); !errors.Is(err, config.ErrUnavailable) {
		t.Fatalf("unsaved write: %v, want ErrUnavailable", err)
	}
	if rec.last().LB.Name != "unsaved" {
		t.Fatalf("the applier runs %q, want the unsaved document", rec.last().LB.Name)
	}
	if st := m.Status(); st.LastError == "" {
		t.Fatal("a failed undo is not reported in Status")
	}
	n := len(rec.applied)
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.applied) != n+1 || rec.last().LB.Name == "unsaved" {
		t.Fatalf("reload after a failed undo: %d applies (want %d), running %q", len(rec.applied), n+1, rec.last().LB.Name)
	}
	if st := m.Status(); st.LastError != "" {
		t.Fatalf("a successful reload keeps LastError %q", st.LastError)
	}
}
