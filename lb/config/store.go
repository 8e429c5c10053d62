package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Version identifies one stored state of a document; the empty Version
// means nothing is stored. Versions are opaque and compared for equality.
type Version string

// ErrConflict is returned by Store.Save when the stored document is no
// longer the one the caller read: another writer changed it in between.
var ErrConflict = errors.New("config: the stored configuration changed since it was read")

// ErrTooLarge is returned (wrapped) by Store.Save when the document is
// over what the store accepts: MaxDocumentBytes, or a shared store's own
// limit (etcd's --max-request-bytes). Nothing is stored; the API answers
// 413.
var ErrTooLarge = errors.New("config: the document is over the store's size limit")

// Store keeps a document: a file (FileStore) or a shared store such as etcd
// for a fleet of instances. Implementations are safe for concurrent use.
type Store interface {
	// Load returns the stored document, parsed strictly but without
	// defaults or validation, and its version.
	Load(ctx context.Context) (*Document, Version, error)
	// Save stores doc if the stored version is still prev and returns the
	// new version, or ErrConflict (or an error wrapping ErrTooLarge or
	// ErrUnavailable). It returns once the document is durable: a crash
	// after Save returns leaves doc stored.
	Save(ctx context.Context, doc *Document, prev Version) (Version, error)
	// Watch returns a channel that receives a value when the stored
	// document changes other than through this Store's own Save; it is
	// closed when ctx ends. A version that Load already returned need not
	// be signalled again: the Manager retries a reload that failed to
	// apply on its own, it does not wait for a signal.
	Watch(ctx context.Context) <-chan struct{}
}

// FileStore is a Store in one file. Save writes a temporary file in the
// same directory, syncs it, renames it over the file and syncs the
// directory, so that a crash at any moment leaves the old or the new
// document, never a torn one. The file is created with mode 0600: it holds
// private keys.
type FileStore struct {
	// Path is the file.
	Path string
	// PollInterval is how often Watch looks at the file (default 1s).
	PollInterval time.Duration

	mu   sync.Mutex
	own  Version // the version of this store's last Save
	seen Version // the last version Load or Watch read
}

// Load reads and parses the file.
func (s *FileStore) Load(ctx context.Context) (*Document, Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, v, err := s.read()
	if err != nil {
		return nil, "", err
	}
	d, err := Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", s.Path, err)
	}
	s.seen = v
	return d, v, nil
}

func (s *FileStore) read() ([]byte, Version, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("config: %s: %w", s.Path, err)
	}
	if len(data) > MaxDocumentBytes {
		return nil, "", fmt.Errorf("config: %s is over the limit of %d bytes", s.Path, MaxDocumentBytes)
	}
	return data, versionOf(data), nil
}

func versionOf(data []byte) Version {
	sum := sha256.Sum256(data)
	return Version(hex.EncodeToString(sum[:16]))
}

// Save writes doc atomically if the file still holds version prev (a
// missing file is version ""), else it returns ErrConflict. A document
// over MaxDocumentBytes, which Load would refuse, is not written: the
// error wraps ErrTooLarge.
func (s *FileStore) Save(ctx context.Context, doc *Document, prev Version) (Version, error) {
	data, err := doc.Marshal()
	if err != nil {
		return "", err
	}
	if len(data) > MaxDocumentBytes {
		return "", fmt.Errorf("config: %s: a document of %d bytes, over %d: %w", s.Path, len(data), MaxDocumentBytes, ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, cur, err := s.read()
	if errors.Is(err, os.ErrNotExist) {
		cur, err = "", nil
	}
	if err != nil {
		return "", err
	}
	if cur != prev {
		return "", ErrConflict
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := writeAtomic(s.Path, data); err != nil {
		return "", err
	}
	v := versionOf(data)
	s.own, s.seen = v, v
	return v, nil
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("config: sync %s: %w", dir, err)
	}
	return nil
}

// Watch polls the file every PollInterval and signals when its content
// differs from what this store last loaded or saved. Writes of its own are
// not signalled.
func (s *FileStore) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	every := s.PollInterval
	if every <= 0 {
		every = time.Second
	}
	go func() {
		defer close(ch)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastMod time.Time
		var lastSize int64 = -1
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			fi, err := os.Stat(s.Path)
			if err != nil || (fi.ModTime().Equal(lastMod) && fi.Size() == lastSize) {
				continue
			}
			lastMod, lastSize = fi.ModTime(), fi.Size()
			s.mu.Lock()
			_, v, err := s.read()
			changed := err == nil && v != s.seen && v != s.own
			if changed {
				s.seen = v
			}
			s.mu.Unlock()
			if changed {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// ErrUnavailable is returned (wrapped) by a Store that cannot reach its
// storage, such as a shared store whose servers are down. The API answers
// 503 to a write that fails with it; the running configuration stays.
var ErrUnavailable = errors.New("config: the configuration store is unavailable")
