package config

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Applier makes a document run. Apply gets a document with defaults
// applied and validated; it converges the running load balancer to it, or
// fails and leaves the running one as it was (atomic as a whole). The
// runtime of package config is one; tests may use others.
type Applier interface {
	Apply(ctx context.Context, doc *Document) error
}

// ErrApply wraps an Applier's failure to run a valid document (a port in
// use, a certificate that cannot be obtained): the running configuration
// stays.
var ErrApply = errors.New("config: the configuration could not be applied")

// ErrNotStarted is returned by Manager.Update before Start succeeded: there
// is no running document to change yet. Current returns a nil document
// then.
var ErrNotStarted = errors.New("config: the manager is not started")

// Manager keeps a Store and an Applier in step: it applies the stored
// document at Start, again whenever the store changes (Watch, or Reload on
// SIGHUP), and carries every write (Update) through validation, the
// Applier and the Store, in that order, one at a time.
//
// A write that fails validation changes nothing; one that fails to apply
// changes nothing; one that cannot be stored (ErrConflict: the store
// changed behind the running document and was not reloaded yet;
// ErrUnavailable) is undone in the Applier. Should that undo fail too, the
// Applier keeps running the unsaved document: Status reports it in
// LastError, and the next Reload applies the stored document whatever its
// version. A reload that fails leaves the running document in place and is
// reported by Status; when it failed for a reason that may pass (ErrApply:
// a port in use, a certificate not obtained yet; ErrUnavailable), Watch
// tries it again after RetryInterval, doubling up to MaxRetryInterval,
// until the stored version runs: until then every Update answers
// ErrConflict.
//
// The Manager's methods are safe for concurrent use.
type Manager struct {
	Store   Store
	Applier Applier
	// Logger receives reloads and their failures (default slog.Default()).
	Logger *slog.Logger
	// RetryInterval is how long Watch waits before retrying a reload
	// that failed with ErrApply or ErrUnavailable (default 1s); the wait
	// doubles after each failed retry up to MaxRetryInterval (default
	// 1m). A new change signalled by the store starts over.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration

	mu      sync.Mutex
	retry   chan struct{} // signalled by a Reload that failed and may pass
	doc     *Document
	version Version
	status  ManagerStatus
}

// ManagerStatus says how the last reload went.
type ManagerStatus struct {
	// Version is the running document's version in the store.
	Version Version `json:"version"`
	// Applied is when the running document was applied.
	Applied time.Time `json:"applied"`
	// Reloads and Failures count reloads from the store and those that
	// failed (to load, validate or apply).
	Reloads  uint64 `json:"reloads"`
	Failures uint64 `json:"failures"`
	// LastError is the last failed reload's error, cleared by a success.
	LastError string `json:"last_error,omitempty"`
	// StoreUnavailable is set while the store cannot be read.
	StoreUnavailable bool `json:"store_unavailable"`
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// Start loads the stored document and applies it. It fails if the document
// does not load, validate or apply: a process should not start serving
// something else than its configuration says.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(ctx)
}

// Reload loads the stored document and applies it, if it changed. On
// failure the running document stays and the error is returned and kept
// in Status.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.Reloads++
	err := m.reloadLocked(ctx)
	if err != nil {
		m.status.Failures++
		m.status.LastError = err.Error()
		m.logger().Error("configuration reload failed; the running configuration stays", "err", err)
		if retryable(err) {
			select {
			case m.retryChan() <- struct{}{}:
			default:
			}
		}
		return err
	}
	m.status.LastError = ""
	return nil
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	doc, v, err := m.Store.Load(ctx)
	m.status.StoreUnavailable = errors.Is(err, ErrUnavailable)
	if err != nil {
		return err
	}
	if m.doc != nil && v == m.version {
		return nil
	}
	doc.ApplyDefaults()
	if err := doc.Validate(); err != nil {
		return err
	}
	if err := m.Applier.Apply(ctx, doc); err != nil {
		return fmt.Errorf("%w: %w", ErrApply, err)
	}
	m.doc, m.version = doc, v
	m.status.Version, m.status.Applied = v, time.Now()
	m.logger().Info("configuration applied", "version", string(v),
		"frontends", len(doc.Frontends), "backends", len(doc.Backends))
	return nil
}

// retryable reports whether a failed reload may succeed later with the
// same stored document.
func retryable(err error) bool {
	return errors.Is(err, ErrApply) || errors.Is(err, ErrUnavailable)
}

// retryChan returns the channel a failed Reload signals; m.mu is held.
func (m *Manager) retryChan() chan struct{} {
	if m.retry == nil {
		m.retry = make(chan struct{}, 1)
	}
	return m.retry
}

// Watch reloads whenever the store signals a change, until ctx ends. A
// reload that failed with ErrApply or ErrUnavailable (in Watch or in a
// Reload called by anyone, such as on SIGHUP) is retried after
// RetryInterval, the wait doubling up to MaxRetryInterval, until a reload
// succeeds (the stored version runs) or fails for another reason (a
// document that does not validate waits for the next change).
func (m *Manager) Watch(ctx context.Context) {
	first, most := m.RetryInterval, m.MaxRetryInterval
	if first <= 0 {
		first = time.Second
	}
	if most <= 0 {
		most = time.Minute
	}
	most = max(most, first)
	m.mu.Lock()
	failed := m.retryChan()
	m.mu.Unlock()
	changes := m.Store.Watch(ctx)
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	delay := first
	for {
		select {
		case _, ok := <-changes:
			if !ok {
				return
			}
			delay = first // a new version: start over
			timer.Stop()
		case <-failed:
			// A reload failed and may pass: try again later.
			timer.Reset(delay)
			delay = min(2*delay, most)
			continue
		case <-timer.C:
		}
		_ = m.Reload(ctx)
	}
}

// Update carries one write: edit receives a copy of the running document
// and changes it (an error from edit is returned as is and changes
// nothing); the result gets its defaults, is validated, applied and
// stored. Update returns the new running document (a copy), or an error
// that wraps a *ValidationError, ErrApply, ErrConflict, ErrUnavailable or
// ErrNotStarted.
// A document written without a sticky-cookie secret gets a random one.
func (m *Manager) Update(ctx context.Context, edit func(*Document) error) (*Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil, ErrNotStarted
	}
	doc := m.doc.Clone()
	if err := edit(doc); err != nil {
		return nil, err
	}
	doc.ApplyDefaults()
	doc.EnsureSecrets()
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	if err := m.Applier.Apply(ctx, doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrApply, err)
	}
	v, err := m.Store.Save(ctx, doc, m.version)
	if err != nil {
		if rerr := m.Applier.Apply(context.WithoutCancel(ctx), m.doc); rerr != nil {
			// The Applier runs the unsaved document: forget the running
			// version so that the next reload applies the stored one.
			m.version = ""
			m.status.LastError = fmt.Sprintf("restoring the running configuration after a failed write: %v", rerr)
			m.logger().Error("restoring the running configuration after a failed write; the next reload applies the stored one", "err", rerr)
		}
		return nil, err
	}
	m.doc, m.version = doc, v
	m.status.Version, m.status.Applied = v, time.Now()
	return doc.Clone(), nil
}

// Current returns a copy of the running document and its version, or a nil
// document before Start succeeds (Update answers ErrNotStarted then).
func (m *Manager) Current() (*Document, Version) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil, ""
	}
	return m.doc.Clone(), m.version
}

// Status reports the running version and the outcome of reloads.
func (m *Manager) Status() ManagerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// NewSecret returns a random secret of 32 bytes, base64url-encoded without
// padding: what a document gets as secrets.sticky_cookie_secret when it
// has none.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// EnsureSecrets gives d a random sticky-cookie secret (NewSecret) when it
// has none, so that every instance reading the stored document signs and
// reads the same cookies. It is what Manager.Update does to every write;
// a document stored by other means (a fleet's seed) calls it too.
func (d *Document) EnsureSecrets() {
	if d.Secrets.StickyCookieSecret == "" {
		d.Secrets.StickyCookieSecret = NewSecret()
	}
}
