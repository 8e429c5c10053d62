package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lbkit/lbkit/lb/config"
)

// Defaults of Options.
const (
	// DefaultKey is the key that holds the document.
	DefaultKey = "/lbkit/config"
	// DefaultTimeout bounds each call to etcd.
	DefaultTimeout = 2 * time.Second
	// DefaultProbeInterval is how often Watch checks that etcd answers.
	DefaultProbeInterval = time.Second
)

// ErrClosed is returned by the calls made after Close.
var ErrClosed = errors.New("etcdstore: the store is closed")

// maxResponseBytes bounds a response from etcd: the document and the
// response's framing.
const maxResponseBytes = config.MaxDocumentBytes + 64<<10

// Options configure a Store. The zero value of each field but Endpoints
// selects its default.
type Options struct {
	// Endpoints are the etcd members' client addresses, "host:port" or
	// "http(s)://host:port". At least one is required.
	Endpoints []string
	// Key holds the document (default DefaultKey).
	Key string
	// Timeout bounds each call to etcd: a Load, a Save, one probe
	// (default DefaultTimeout). A caller's earlier deadline wins.
	Timeout time.Duration
	// ProbeInterval is how often Watch reads the key to find out whether
	// etcd answers (default DefaultProbeInterval).
	ProbeInterval time.Duration
	// TLS, when set, is used to connect to etcd (https endpoints, client
	// certificates).
	TLS *tls.Config
	// Username and Password authenticate to an etcd with authentication
	// enabled (empty: none).
	Username, Password string
	// Logger receives the store's events: etcd going down or coming back,
	// a watch that restarts (default slog.Default()).
	Logger *slog.Logger
}

// Store is a config.Store in one etcd key. Its methods are safe for
// concurrent use. Close releases its connections.
type Store struct {
	client        *clientv3.Client
	key           string
	timeout       time.Duration
	probeInterval time.Duration
	log           *slog.Logger

	// saveMu is held across a Save's transaction, so that the watcher
	// judges an event only once the Save that made it has recorded its
	// revision: a Store never signals its own write.
	saveMu sync.Mutex

	events atomic.Int64 // watch events judged, for tests

	mu      sync.Mutex
	seen    int64 // the highest ModRevision of the key this store has read, written or watched
	health  Health
	known   bool          // health was set by a call
	changed chan struct{} // closed and replaced when health changes
}

// Health says whether etcd answered the store's last call.
type Health struct {
	// Up is true when the last call to etcd succeeded (or failed for a
	// reason of its own, such as a conflict), false before the first call
	// and while calls fail with config.ErrUnavailable.
	Up bool
	// Since is when Up last changed.
	Since time.Time
	// Err is the last call's error that made the store unavailable, nil
	// while Up.
	Err error
}

// New returns a Store over the etcd members opts.Endpoints. It does not
// wait for them: a Store made while etcd is down works once it is back.
func New(opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no endpoint")
	}
	s := &Store{
		key:           opts.Key,
		timeout:       opts.Timeout,
		probeInterval: opts.ProbeInterval,
		log:           opts.Logger,
		changed:       make(chan struct{}),
	}
	if s.key == "" {
		s.key = DefaultKey
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.probeInterval <= 0 {
		s.probeInterval = DefaultProbeInterval
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            opts.Endpoints,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: s.timeout,
		MaxCallSendMsgSize:   maxResponseBytes,
		MaxCallRecvMsgSize:   maxResponseBytes,
		TLS:                  opts.TLS,
		Username:             opts.Username,
		Password:             opts.Password,
		Logger:               zap.NewNop(), // the store logs what matters through slog
		DialOptions: []grpc.DialOption{
			// gRPC's default backoff grows to 2 minutes: an etcd back
			// after a long outage would stay unused that long.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: s.timeout},
				MinConnectTimeout: s.timeout,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %w", err)
	}
	s.client = c
	return s, nil
}

// Key returns the key that holds the document.
func (s *Store) Key() string { return s.key }

// Close closes the connections to etcd; calls after Close fail, and the
// channels of Watch close.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcdstore: %w", err)
	}
	return nil
}

// Health reports whether etcd answered the store's last call.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// Load reads the document and its version (the key's ModRevision).
func (s *Store) Load(ctx context.Context) (*config.Document, config.Version, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.Get(cctx, s.key)
	if err = s.result(ctx, "load", err); err != nil {
		return nil, "", err
	}
	if len(resp.Kvs) == 0 {
		return nil, "", fmt.Errorf("etcdstore: key %s: %w", s.key, fs.ErrNotExist)
	}
	kv := resp.Kvs[0]
	d, err := config.Parse(kv.Value)
	if err != nil {
		return nil, "", fmt.Errorf("etcdstore: key %s: %w", s.key, err)
	}
	s.see(kv.ModRevision)
	return d, version(kv.ModRevision), nil
}

// Save writes doc if the key's ModRevision is still prev (the key is
// absent for prev ""), in one transaction; otherwise it returns
// config.ErrConflict. A version not made by an etcd store conflicts. When
// the call fails with config.ErrUnavailable the write may or may not have
// happened: Watch signals it if it did.
func (s *Store) Save(ctx context.Context, doc *config.Document, prev config.Version) (config.Version, error) {
	data, err := doc.Marshal()
	if err != nil {
		return "", err
	}
	if len(data) > config.MaxDocumentBytes {
		return "", fmt.Errorf("etcdstore: document of %d bytes is over the limit of %d: %w", len(data), config.MaxDocumentBytes, config.ErrTooLarge)
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(s.key), "=", 0)
	if prev != "" {
		rev, err := strconv.ParseInt(string(prev), 10, 64)
		if err != nil || rev <= 0 {
			return "", fmt.Errorf("etcdstore: version %q: %w", prev, config.ErrConflict)
		}
		cmp = clientv3.Compare(clientv3.ModRevision(s.key), "=", rev)
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.Txn(cctx).If(cmp).Then(clientv3.OpPut(s.key, string(data))).Commit()
	if err = s.result(ctx, "save", err); err != nil {
		return "", err
	}
	if !resp.Succeeded {
		return "", config.ErrConflict
	}
	rev := resp.Header.Revision
	s.see(rev)
	return version(rev), nil
}

func version(rev int64) config.Version { return config.Version(strconv.FormatInt(rev, 10)) }

// see records that the key was read or written at rev and reports whether
// rev is newer than any revision seen before.
func (s *Store) see(rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.seen {
		return false
	}
	s.seen = rev
	return true
}

// result turns the error of a call to etcd into the store's error, and
// records whether etcd answered.
func (s *Store) result(ctx context.Context, op string, err error) error {
	if err == nil {
		s.setHealth(nil)
		return nil
	}
	if ctx.Err() != nil { // the caller gave up: nothing is known of etcd
		return fmt.Errorf("etcdstore: %s: %w", op, ctx.Err())
	}
	if s.client.Ctx().Err() != nil {
		return fmt.Errorf("etcdstore: %s: %w", op, ErrClosed)
	}
	if tooLarge(err) {
		s.setHealth(nil)
		return fmt.Errorf("etcdstore: %s %s: %w: %w", op, s.key, config.ErrTooLarge, err)
	}
	if unavailable(err) {
		err = fmt.Errorf("etcdstore: %s %s: %w: %w", op, s.key, config.ErrUnavailable, err)
		s.setHealth(err)
		return err
	}
	s.setHealth(nil)
	return fmt.Errorf("etcdstore: %s %s: %w", op, s.key, err)
}

// tooLarge reports whether err is etcd refusing a request over its
// --max-request-bytes: etcd's own "request is too large", or, for a
// request also over the gRPC limit etcd derives from it (that plus
// 512 KiB), gRPC's ResourceExhausted "message larger than max", which is
// no sign of etcd being down.
func tooLarge(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee == rpctypes.ErrRequestTooLarge
	}
	if rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge) {
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}

// unavailable reports whether err says etcd could not be reached or could
// not serve the call, rather than refused it.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true // the store's own timeout
	}
	if errors.Is(err, rpctypes.ErrNotLeader) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

// setHealth records the outcome of a call: err nil when etcd answered.
func (s *Store) setHealth(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := err == nil
	if s.known && s.health.Up == up {
		s.health.Err = err
		return
	}
	s.health = Health{Up: up, Since: time.Now(), Err: err}
	wasKnown := s.known
	s.known = true
	if !wasKnown && up {
		return // the first call worked: nothing changed for anyone
	}
	if up {
		s.log.Info("etcd answers again; the configuration store is available", "key", s.key)
	} else {
		s.log.Warn("etcd does not answer; the running configuration stays until it does", "key", s.key, "err", err)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// healthChanged returns a channel closed at the next change of Health.
func (s *Store) healthChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Watch returns a channel that receives a value when the document changes
// other than through this Store's Save, and when etcd stops or starts
// answering. It is closed when ctx ends or the Store is closed.
//
// An etcd watch follows the key from the last revision this Store saw
// (resuming across reconnections); when that revision was compacted, or
// the watch was cancelled (a member without a leader), the key is read
// afresh and watched again. A read every ProbeInterval finds out whether
// etcd answers, and catches a change the watch would have missed.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.watchKey(ctx, notify)
		cancel() // the client was closed
	}()
	go func() {
		defer wg.Done()
		s.probe(ctx, notify)
	}()
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}

// watchKey runs etcd watches on the key until ctx ends or the client is
// closed, calling notify for each change not made by this Store.
func (s *Store) watchKey(ctx context.Context, notify func()) {
	retry := 100 * time.Millisecond
	for ctx.Err() == nil && s.client.Ctx().Err() == nil {
		s.mu.Lock()
		from := s.seen + 1
		s.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		opts := []clientv3.OpOption{clientv3.WithRev(from)}
		if from == 1 { // nothing read yet: watch from now
			opts = nil
		}
		var werr error
		for resp := range s.client.Watch(wctx, s.key, opts...) {
			if werr = resp.Err(); werr != nil {
				break
			}
			retry = 100 * time.Millisecond
			for _, ev := range resp.Events {
				s.saveMu.Lock() // wait for a Save in flight to record its revision
				newer := s.see(ev.Kv.ModRevision)
				s.saveMu.Unlock()
				s.events.Add(1)
				if newer {
					notify()
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if werr != nil {
			s.log.Debug("etcd watch ended; reading the key and watching again", "key", s.key, "err", werr)
		}
		// Compacted, cancelled or the stream ended: catch up with a read.
		if s.catchUp(ctx) {
			notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, s.probeInterval)
	}
}

// catchUp reads the key and reports whether it changed beyond what this
// Store has seen. A missing key counts as a change when it was seen
// before.
func (s *Store) catchUp(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.Get(cctx, s.key, clientv3.WithKeysOnly())
	if s.result(ctx, "read", err) != nil {
		return false
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if len(resp.Kvs) == 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.seen > 0 && resp.Header.Revision > s.seen {
			s.seen = resp.Header.Revision // deleted since
			return true
		}
		return false
	}
	return s.see(resp.Kvs[0].ModRevision)
}

// probe reads the key every probeInterval, and notifies when etcd's
// health changes or the key changed unseen.
func (s *Store) probe(ctx context.Context, notify func()) {
	t := time.NewTicker(s.probeInterval)
	defer t.Stop()
	changed := s.healthChanged()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
			if s.catchUp(ctx) {
				notify()
			}
		}
		// A change of health, by this probe or by any other call, is
		// signalled before the next probe: select alone would pick
		// between a closed changed and a tick at random.
		select {
		case <-changed:
			changed = s.healthChanged()
			notify()
		default:
		}
	}
}
