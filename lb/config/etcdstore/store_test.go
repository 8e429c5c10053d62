package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/etcdstore"
)

const tutorial = `{
  "lb": {"id": "lb-1", "name": "demo"},
  "backends": [{
    "id": "b-web", "name": "web", "forward_protocol": "http", "forward_port": 8080,
    "pool": ["127.0.0.2", "127.0.0.3"]
  }],
  "frontends": [{"id": "f-web", "name": "web", "inbound_port": 8443, "backend_id": "b-web"}]
}`

func document(t *testing.T, name string) *config.Document {
	t.Helper()
	d, err := config.Load([]byte(tutorial))
	if err != nil {
		t.Fatal(err)
	}
	d.LB.Name = name
	return d
}

var quiet = slog.New(slog.DiscardHandler)

// newStore returns a Store over srv with short timeouts, closed at the end
// of the test.
func newStore(t *testing.T, srv *testservers.Server, key string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(etcdstore.Options{
		Endpoints:     []string{srv.Addr},
		Key:           key,
		Timeout:       time.Second,
		Logger:        quiet,
		ProbeInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receive waits for a signal on ch, failing after 10 s.
func receive(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the watch channel closed", what)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no signal within 10s", what)
	}
}

func TestLoadSave(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	a := newStore(t, srv, "/test/config")
	b := newStore(t, srv, "/test/config")

	if _, _, err := a.Load(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	v1, err := a.Save(ctx, document(t, "one"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Save(ctx, document(t, "other"), ""); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("a first write over an existing key: %v, want ErrConflict", err)
	}
	d, v, err := b.Load(ctx)
	if err != nil || v != v1 || d.LB.Name != "one" {
		t.Fatalf("Load: %v %q %+v, want version %q and the saved document", err, v, d, v1)
	}
	// The version is the key's ModRevision, as etcdctl reports it.
	out, err := exec.Command(testutil.LookBinary(t, "etcdctl", "etcd-client"), "--endpoints", srv.Addr,
		"get", "/test/config", "-w", "fields").CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl: %v\n%s", err, out)
	}
	if want := fmt.Sprintf(`"ModRevision" : %s`, v1); !containsLine(string(out), want) {
		t.Fatalf("etcdctl get does not show %s:\n%s", want, out)
	}

	v2, err := b.Save(ctx, document(t, "two"), v1)
	if err != nil {
		t.Fatal(err)
	}
	if v2 == v1 {
		t.Fatal("a write kept the version")
	}
	// a still holds v1: its write is refused, and the key keeps b's.
	if _, err := a.Save(ctx, document(t, "lost"), v1); !errors.Is(err, config.ErrConflict) {
		t.Fatalf("write from a stale version: %v, want ErrConflict", err)
	}
	for _, bad := range []config.Version{"abc", "-1", "0"} {
		if _, err := a.Save(ctx, document(t, "lost"), bad); !errors.Is(err, config.ErrConflict) {
			t.Fatalf("write from version %q: %v, want ErrConflict", bad, err)
		}
	}
	if d, v, err := a.Load(ctx); err != nil || v != v2 || d.LB.Name != "two" {
		t.Fatalf("after the conflicts: %v %q %q", err, v, d.LB.Name)
	}
	// Other keys are other documents.
	if _, _, err := newStore(t, srv, "/test/other").Load(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("another key: %v", err)
	}
}

func containsLine(s, want string) bool {
	for line := range strings.Lines(s) {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}

// TestUnavailable stops etcd: every call fails with ErrUnavailable within
// the store's timeout, Health says so and Watch signals it, and all comes
// back with etcd, including the watch.
func TestUnavailable(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	a := newStore(t, srv, "/test/config")
	b := newStore(t, srv, "/test/config")
	v1, err := a.Save(ctx, document(t, "one"), "")
	if err != nil {
		t.Fatal(err)
	}
	w := a.Watch(ctx)
	if !a.Health().Up {
		t.Fatal("Health is down after a successful call")
	}

	srv.Stop(t)
	receive(t, w, "etcd stopped")
	if h := a.Health(); h.Up || !errors.Is(h.Err, config.ErrUnavailable) {
		t.Fatalf("Health while etcd is stopped: %+v", h)
	}
	t0 := time.Now()
	if _, _, err := a.Load(ctx); !errors.Is(err, config.ErrUnavailable) {
		t.Fatalf("Load while etcd is stopped: %v, want ErrUnavailable", err)
	}
	if _, err := a.Save(ctx, document(t, "two"), v1); !errors.Is(err, config.ErrUnavailable) {
		t.Fatalf("Save while etcd is stopped: %v, want ErrUnavailable", err)
	}
	if d := time.Since(t0); d > 2*time.Second+time.Second {
		t.Fatalf("two calls took %v with a timeout of 1s each", d)
	}

	srv.Start(t)
	receive(t, w, "etcd back")
	testutil.Eventually(t, "Health up", func() bool { return a.Health().Up })
	// The watch resumed: a write by b reaches a.
	v2, err := b.Save(ctx, document(t, "two"), v1)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, w, "write after the restart")
	if _, v, err := a.Load(ctx); err != nil || v != v2 {
		t.Fatalf("Load after the restart: %v %q, want %q", err, v, v2)
	}
}

// TestWatchCompacted has a store watch from a revision that etcd has
// compacted away: it reads the key and signals the change it missed.
func TestWatchCompacted(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	a := newStore(t, srv, "/test/config")
	b := newStore(t, srv, "/test/config")
	v, err := a.Save(ctx, document(t, "one"), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if v, err = b.Save(ctx, document(t, "n"+strconv.Itoa(i)), v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(testutil.LookBinary(t, "etcdctl", "etcd-client"), "--endpoints", srv.Addr,
		"compact", string(v)).CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl compact: %v\n%s", err, out)
	}
	// a saw only its own write, three revisions ago: its watch starts
	// there, is told of the compaction, and reads the key.
	w := a.Watch(ctx)
	receive(t, w, "change behind a compaction")
	if d, got, err := a.Load(ctx); err != nil || got != v || d.LB.Name != "n2" {
		t.Fatalf("Load: %v %q", err, got)
	}
}

// TestWatchClosed: the channel closes when the context ends.
func TestWatchClosed(t *testing.T) {
	srv := testservers.Etcd(t)
	a := newStore(t, srv, "/test/config")
	ctx, cancel := context.WithCancel(t.Context())
	w := a.Watch(ctx)
	cancel()
	select {
	case _, ok := <-w:
		if ok {
			for range w {
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch channel did not close")
	}
}

// recorder is an Applier that keeps the last document it applied.
type recorder struct {
	mu   sync.Mutex
	last *config.Document
}

func (r *recorder) Apply(_ context.Context, d *config.Document) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = d.Clone()
	return nil
}

func (r *recorder) applied() *config.Document {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// startManager starts a Manager over a new store and watches.
func startManager(t *testing.T, srv *testservers.Server) (*config.Manager, *recorder) {
	t.Helper()
	rec := &recorder{}
	m := &config.Manager{Store: newStore(t, srv, "/test/config"), Applier: rec, Logger: quiet}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, rec
}

// TestManagersConverge: a change written through one Manager is applied by
// another, and while etcd is down both keep their configuration and report
// the store unavailable.
func TestManagersConverge(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	if _, err := newStore(t, srv, "/test/config").Save(ctx, document(t, "one"), ""); err != nil {
		t.Fatal(err)
	}
	m1, rec1 := startManager(t, srv)
	m2, _ := startManager(t, srv)

	d, err := m2.Update(ctx, func(d *config.Document) error { d.LB.Name = "two"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "m1 applies m2's write", func() bool { return rec1.applied().LB.Name == "two" })
	if _, v := m1.Current(); v != m2.Status().Version {
		t.Fatalf("m1 runs version %q, m2 wrote %q", v, m2.Status().Version)
	}
	if rec1.applied().Secrets.StickyCookieSecret != d.Secrets.StickyCookieSecret {
		t.Fatal("m1 did not get the fleet's cookie secret")
	}

	srv.Stop(t)
	for _, m := range []*config.Manager{m1, m2} {
		testutil.Eventually(t, "StoreUnavailable", func() bool { return m.Status().StoreUnavailable })
		if st := m.Status(); st.LastError == "" || st.Failures == 0 {
			t.Fatalf("status while etcd is down: %+v", st)
		}
		if d, _ := m.Current(); d == nil || d.LB.Name != "two" {
			t.Fatal("the running document changed while etcd is down")
		}
	}
	if _, err := m1.Update(ctx, func(d *config.Document) error { d.LB.Name = "three"; return nil }); !errors.Is(err, config.ErrUnavailable) {
		t.Fatalf("write while etcd is down: %v, want ErrUnavailable", err)
	}
	if rec1.applied().LB.Name != "two" {
		t.Fatal("the refused write stayed applied")
	}
	srv.Start(t)
	for _, m := range []*config.Manager{m1, m2} {
		testutil.Eventually(t, "store available again", func() bool {
			st := m.Status()
			return !st.StoreUnavailable && st.LastError == ""
		})
	}
	if _, err := m1.Update(ctx, func(d *config.Document) error { d.LB.Name = "three"; return nil }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "m2 applies m1's write", func() bool { d, _ := m2.Current(); return d.LB.Name == "three" })
}

// TestConcurrentWriters has two Managers write at the same moment, round
// after round: each write lands or fails with ErrConflict, and the stored
// document holds exactly the writes that landed.
func TestConcurrentWriters(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	if _, err := newStore(t, srv, "/test/config").Save(ctx, document(t, "one"), ""); err != nil {
		t.Fatal(err)
	}
	ms := make([]*config.Manager, 2)
	for i := range ms {
		ms[i], _ = startManager(t, srv)
	}
	reader := newStore(t, srv, "/test/config")
	var landed []string
	conflicts := 0
	deadline := time.Now().Add(30 * time.Second)
	rounds := 0
	for ; rounds < 40 && time.Now().Before(deadline); rounds++ {
		errs := make([]error, len(ms))
		ips := make([]string, len(ms))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, m := range ms {
			ips[i] = fmt.Sprintf("10.%d.%d.1", i, rounds)
			wg.Go(func() {
				<-start
				_, errs[i] = m.Update(ctx, func(d *config.Document) error {
					d.Backends[0].Pool = append(d.Backends[0].Pool, ips[i])
					return nil
				})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			switch {
			case err == nil:
				landed = append(landed, ips[i])
			case errors.Is(err, config.ErrConflict):
				conflicts++
			default:
				t.Fatalf("round %d: writer %d: %v", rounds, i, err)
			}
		}
		d, v, err := reader.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range landed {
			if !slices.Contains(d.Backends[0].Pool, ip) {
				t.Fatalf("round %d: the write of %s returned success but is not stored: %v", rounds, ip, d.Backends[0].Pool)
			}
		}
		if want := 2 + len(landed); len(d.Backends[0].Pool) != want {
			t.Fatalf("round %d: stored pool %v, want the 2 first servers and %v", rounds, d.Backends[0].Pool, landed)
		}
		// Both managers catch up before the next round.
		for _, m := range ms {
			testutil.Eventually(t, "manager at the stored version", func() bool { _, mv := m.Current(); return mv == v })
		}
	}
	if len(landed) < rounds {
		t.Fatalf("%d writes landed in %d rounds: at least one per round must", len(landed), rounds)
	}
	t.Logf("%d rounds: %d writes landed, %d conflicts", rounds, len(landed), conflicts)
}

// TestSaveTooLarge: a document under config.MaxDocumentBytes but over
// etcd's --max-request-bytes (1.5 MiB by default) is refused with
// config.ErrTooLarge, not reported as etcd being down; the stored
// document stays.
func TestSaveTooLarge(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	a := newStore(t, srv, "/test/large")
	d, err := config.Load([]byte(tutorial))
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Save(ctx, d, "")
	if err != nil {
		t.Fatal(err)
	}
	// Over etcd's limit, then also over the gRPC limit derived from it.
	for _, size := range []int{1700 << 10, 3 << 20} {
		d.LB.Description = strings.Repeat("x", size)
		_, err = a.Save(ctx, d, v)
		if !errors.Is(err, config.ErrTooLarge) || errors.Is(err, config.ErrUnavailable) {
			t.Fatalf("Save of a %d-byte document: %v, want ErrTooLarge", size, err)
		}
	}
	if h := a.Health(); !h.Up {
		t.Fatalf("health after a refused large write: %+v, want up", h)
	}
	if got, gv, err := a.Load(ctx); err != nil || gv != v || got.LB.Description != "" {
		t.Fatalf("Load after the refused write: %v %q", err, gv)
	}
}
