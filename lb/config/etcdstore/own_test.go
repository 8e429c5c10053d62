package etcdstore

import (
	"log/slog"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// TestWatchIgnoresOwnWrites: a store's watch judges the events of its own
// writes without signalling them, and signals another store's.
func TestWatchIgnoresOwnWrites(t *testing.T) {
	srv := testservers.Etcd(t)
	ctx := t.Context()
	open := func() *Store {
		s, err := New(Options{Endpoints: []string{srv.Addr}, Timeout: time.Second,
			ProbeInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	doc, err := config.Load([]byte(`{"lb": {"id": "lb-1", "name": "demo"}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Save(ctx, doc, "")
	if err != nil {
		t.Fatal(err)
	}
	w := a.Watch(ctx)
	for i := range 20 {
		if v, err = a.Save(ctx, doc, v); err != nil {
			t.Fatal(err)
		}
		want := int64(i + 1)
		testutil.Eventually(t, "the watch judges the write", func() bool { return a.events.Load() >= want })
		select {
		case <-w:
			t.Fatalf("write %d: the store signalled its own write", i)
		default:
		}
	}
	// The probe ran meanwhile (every 20 ms) and did not signal either;
	// another store's write is signalled.
	if _, err := b.Save(ctx, doc, v); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("another store's write was not signalled")
	}
}
