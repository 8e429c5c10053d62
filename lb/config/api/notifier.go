package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// Notifier defaults.
const (
	DefaultNotifyQueue    = 256
	DefaultNotifyTimeout  = 5 * time.Second
	DefaultNotifyAttempts = 4
	DefaultNotifyBackoff  = 500 * time.Millisecond
)

// WebhookEvent is the JSON body a webhook subscriber receives for one
// server state change.
type WebhookEvent struct {
	// Type is "server_state_changed".
	Type         string `json:"type"`
	SubscriberID string `json:"subscriber_id"`
	config.ServerEvent
}

// Notifier delivers server state changes to the load balancer's
// subscriber (Document.LB.SubscriberID, looked up when the event is sent).
// Notify queues an event without blocking; Run sends the queue's events
// one at a time until its context ends. A webhook gets a POST of a
// WebhookEvent, each attempt bounded by Timeout; a failure (an error or a
// status other than 2xx) is retried up to Attempts times in all, waiting
// Backoff, then twice as long each time. Email subscribers are recorded
// but no mail is sent: their events count as Skipped.
//
// Set the fields before calling Notify or Run; the methods are safe for
// concurrent use. Run must be running for events to leave the queue.
type Notifier struct {
	// Manager gives the subscriber. Required.
	Manager *config.Manager
	// Client sends the webhooks (default http.DefaultClient); each
	// attempt is bounded by Timeout whatever the client.
	Client *http.Client
	// Queue bounds the events waiting (default DefaultNotifyQueue); an
	// event that finds the queue full is dropped and counted.
	Queue int
	// Timeout bounds one attempt (default DefaultNotifyTimeout).
	Timeout time.Duration
	// Attempts bounds the attempts of one event (default
	// DefaultNotifyAttempts); Backoff is the first wait between two
	// (default DefaultNotifyBackoff), doubled after each.
	Attempts int
	Backoff  time.Duration
	// Logger receives failed deliveries (default slog.Default()).
	Logger *slog.Logger

	queue   atomic.Pointer[chan config.ServerEvent]
	sent    atomic.Uint64
	failed  atomic.Uint64
	dropped atomic.Uint64
	skipped atomic.Uint64
}

// NotifierStats counts a Notifier's events: Sent (delivered), Failed
// (every attempt failed), Dropped (the queue was full) and Skipped (no
// subscriber, or an email subscriber).
type NotifierStats struct {
	Sent, Failed, Dropped, Skipped uint64
}

// Stats returns the counts so far.
func (n *Notifier) Stats() NotifierStats {
	return NotifierStats{n.sent.Load(), n.failed.Load(), n.dropped.Load(), n.skipped.Load()}
}

func (n *Notifier) ch() chan config.ServerEvent {
	if q := n.queue.Load(); q != nil {
		return *q
	}
	size := n.Queue
	if size <= 0 {
		size = DefaultNotifyQueue
	}
	q := make(chan config.ServerEvent, size)
	if n.queue.CompareAndSwap(nil, &q) {
		return q
	}
	return *n.queue.Load()
}

// Notify queues ev without blocking, or drops it when the queue is full.
// It fits config.RuntimeOptions.OnServerEvent.
func (n *Notifier) Notify(ev config.ServerEvent) {
	select {
	case n.ch() <- ev:
	default:
		n.dropped.Add(1)
	}
}

// Run delivers queued events until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	q := n.ch()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q:
			n.deliver(ctx, ev)
		}
	}
}

func (n *Notifier) logger() *slog.Logger {
	if n.Logger != nil {
		return n.Logger
	}
	return slog.Default()
}

func (n *Notifier) deliver(ctx context.Context, ev config.ServerEvent) {
	d, _ := n.Manager.Current()
	var sub *config.Subscriber
	if d != nil && d.LB.SubscriberID != "" {
		sub = findSubscriber(d, d.LB.SubscriberID)
	}
	if sub == nil || sub.WebhookConfig == nil {
		n.skipped.Add(1)
		return
	}
	if ev.LBID == "" {
		ev.LBID = lbID(d)
	}
	body, err := json.Marshal(WebhookEvent{Type: "server_state_changed", SubscriberID: sub.ID, ServerEvent: ev})
	if err != nil {
		n.failed.Add(1)
		return
	}
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = DefaultNotifyAttempts
	}
	wait := n.Backoff
	if wait <= 0 {
		wait = DefaultNotifyBackoff
	}
	for i := range attempts {
		if i > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				n.failed.Add(1)
				return
			case <-t.C:
			}
			wait *= 2
		}
		if err = n.post(ctx, sub.WebhookConfig.URI, body); err == nil {
			n.sent.Add(1)
			return
		}
	}
	n.failed.Add(1)
	n.logger().Warn("api: webhook delivery failed", "subscriber", sub.ID, "attempts", attempts, "err", err)
}

func (n *Notifier) post(ctx context.Context, uri string, body []byte) error {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultNotifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("api: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lbkit-notifier")
	client := n.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("api: webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("api: webhook: status %s", resp.Status)
	}
	return nil
}
