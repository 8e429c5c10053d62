package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

// hook is a webhook receiver that fails the first failFirst calls.
type hook struct {
	failFirst int32
	calls     atomic.Int32
	mu        sync.Mutex
	got       []api.WebhookEvent
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.calls.Add(1)
	if n <= h.failFirst {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var ev api.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, ev)
	h.mu.Unlock()
}

func (h *hook) events() []api.WebhookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]api.WebhookEvent(nil), h.got...)
}

// subscribed returns an env whose load balancer is subscribed to a webhook
// at uri (or to an email address when uri is empty).
func subscribed(t *testing.T, uri string) *env {
	e := start(t, seed)
	body := obj{"name": "ops", "webhook_config": obj{"uri": uri}}
	if uri == "" {
		body = obj{"name": "ops", "email_config": obj{"email": "ops@example.com"}}
	}
	var s obj
	e.must(200, "POST", z+"/subscribers", body, &s)
	e.must(200, "POST", z+"/lb/"+lbPath[len(z+"/lbs/"):]+"/subscribe", obj{"subscriber_id": str(s, "id")}, nil)
	return e
}

func runNotifier(t *testing.T, n *api.Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

var event = config.ServerEvent{Time: time.Now().UTC(), BackendID: "b1", BackendName: "web", IP: "10.0.0.1", From: "running", To: "stopped", Reason: "connection refused"}

func TestNotifierRetries(t *testing.T) {
	h := &hook{failFirst: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := subscribed(t, srv.URL+"/hook")
	n := &api.Notifier{Manager: e.m, Backoff: time.Millisecond, Attempts: 3}
	runNotifier(t, n)
	n.Notify(event)
	testutil.Eventually(t, "the delivery", func() bool { return n.Stats().Sent == 1 })
	got := h.events()
	if len(got) != 1 || got[0].IP != "10.0.0.1" || got[0].To != "stopped" || got[0].Type != "server_state_changed" || got[0].LBID == "" || got[0].SubscriberID == "" {
		t.Fatalf("events %+v", got)
	}
	if c := h.calls.Load(); c != 3 {
		t.Fatalf("%d calls, want 3 (two failures, then success)", c)
	}
}

func TestNotifierGivesUp(t *testing.T) {
	h := &hook{failFirst: 1 << 30}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := subscribed(t, srv.URL)
	n := &api.Notifier{Manager: e.m, Backoff: time.Millisecond, Attempts: 4}
	runNotifier(t, n)
	n.Notify(event)
	testutil.Eventually(t, "the failure", func() bool { return n.Stats().Failed == 1 })
	if c := h.calls.Load(); c != 4 {
		t.Fatalf("%d calls, want 4", c)
	}
}

func TestNotifierTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	e := subscribed(t, srv.URL)
	n := &api.Notifier{Manager: e.m, Backoff: time.Millisecond, Attempts: 2, Timeout: 20 * time.Millisecond}
	runNotifier(t, n)
	n.Notify(event)
	testutil.Eventually(t, "the failure", func() bool { return n.Stats().Failed == 1 })
}

func TestNotifierQueueDrops(t *testing.T) {
	e := subscribed(t, "http://127.0.0.1:9/hook")
	n := &api.Notifier{Manager: e.m, Queue: 2}
	// Run is not started: the queue fills.
	for range 5 {
		n.Notify(event)
	}
	if s := n.Stats(); s.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", s)
	}
}

func TestNotifierEmailIsSkipped(t *testing.T) {
	e := subscribed(t, "")
	n := &api.Notifier{Manager: e.m}
	runNotifier(t, n)
	n.Notify(event)
	testutil.Eventually(t, "the skip", func() bool { return n.Stats().Skipped == 1 })
	if s := n.Stats(); s.Sent != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}
