package tlsmode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the certificates of a frontend and chooses one by the name
// the client asks for (SNI): an exact name first, then a wildcard covering
// one label ("*.example.com" for "a.example.com", not "a.b.example.com"),
// then the ACME manager when there is one and it may issue for the name,
// then the default certificate: the first one added. Clients that send no
// SNI get the default too. Use Store.GetCertificate as
// tls.Config.GetCertificate (Config does).
//
// Certificates are added from memory (Add) or from PEM files (AddFiles).
// Reload reads the files again and Watch does so when they change; the new
// set replaces the old one atomically, so handshakes in flight finish with
// the old certificate and no connection is dropped. If a file is broken
// the old set stays. Lookups take no lock and do not allocate.
//
// The zero value is an empty store. Its methods are safe for concurrent
// use. Configure ACME and Logger before first use.
type Store struct {
	// ACME, when set, obtains and renews certificates for the names its
	// HostPolicy allows and that no added certificate covers, and answers
	// TLS-ALPN-01 challenges.
	ACME *ACME

	// Logger receives reload events; nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex // serialises changes to sources and table
	sources []*source
	table   atomic.Pointer[certTable]
}

// source is one certificate: from memory, or from files.
type source struct {
	certFile, keyFile string
	stamp             [2]fileStamp // of certFile and keyFile when last loaded
	cert              *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

type certTable struct {
	exact map[string]*tls.Certificate
	wild  map[string]*tls.Certificate // keyed by the name without "*."
	def   *tls.Certificate
}

// Add adds cert to the store, under the DNS names of its leaf certificate
// (or its subject common name when it has none). The first certificate
// added is the default.
func (s *Store) Add(cert tls.Certificate) error {
	if err := prepare(&cert); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, &source{cert: &cert})
	s.rebuildLocked()
	return nil
}

// AddFiles loads a certificate chain and its private key from PEM files
// and adds it as Add does. keyFile may be empty or equal to certFile when
// one file holds both. The files are read again by Reload and Watch.
func (s *Store) AddFiles(certFile, keyFile string) error {
	if keyFile == "" {
		keyFile = certFile
	}
	src := &source{certFile: certFile, keyFile: keyFile}
	if err := src.load(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, src)
	s.rebuildLocked()
	return nil
}

// load reads the files of src; on error src is unchanged.
func (src *source) load() error {
	st, err := statFiles(src.certFile, src.keyFile)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(src.certFile)
	if err != nil {
		return fmt.Errorf("tlsmode: %w", err)
	}
	keyPEM := certPEM
	if src.keyFile != src.certFile {
		if keyPEM, err = os.ReadFile(src.keyFile); err != nil {
			return fmt.Errorf("tlsmode: %w", err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPEM, src.certFile, err)
	}
	if err := prepare(&cert); err != nil {
		return fmt.Errorf("%s: %w", src.certFile, err)
	}
	src.cert, src.stamp = &cert, st
	return nil
}

func statFiles(certFile, keyFile string) ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, f := range [2]string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, fmt.Errorf("tlsmode: %w", err)
		}
		st[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return st, nil
}

// prepare parses the leaf of cert, which names the certificate.
func prepare(cert *tls.Certificate) error {
	if len(cert.Certificate) == 0 {
		return fmt.Errorf("%w: no certificate", ErrPEM)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPEM, err)
		}
		cert.Leaf = leaf
	}
	return nil
}

func names(leaf *x509.Certificate) []string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	if leaf.Subject.CommonName != "" {
		return []string{leaf.Subject.CommonName}
	}
	return nil
}

// rebuildLocked publishes a new table from the sources. An earlier source
// wins a name claimed twice.
func (s *Store) rebuildLocked() {
	t := &certTable{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	for _, src := range s.sources {
		if t.def == nil {
			t.def = src.cert
		}
		for _, n := range names(src.cert.Leaf) {
			n = strings.TrimSuffix(strings.ToLower(n), ".")
			m := t.exact
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				n, m = rest, t.wild
			}
			if _, dup := m[n]; !dup {
				m[n] = src.cert
			}
		}
	}
	s.table.Store(t)
}

// Lookup returns the certificate added for the server name sni (exact,
// then wildcard), or nil. It ignores the default and ACME.
func (s *Store) Lookup(sni string) *tls.Certificate {
	t := s.table.Load()
	if t == nil || sni == "" {
		return nil
	}
	name := sni
	if hasUpper(name) || strings.HasSuffix(name, ".") {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
	}
	if c := t.exact[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return t.wild[name[i+1:]]
	}
	return nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// GetCertificate chooses the certificate for a handshake, as the Store
// documents. It returns an error wrapping ErrNoCertificate when the store
// has none for the name and no default.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.ACME != nil && isACMEChallenge(hello) {
		return s.ACME.getCertificate(hello)
	}
	if c := s.Lookup(hello.ServerName); c != nil {
		return c, nil
	}
	if s.ACME != nil && hello.ServerName != "" && s.ACME.allowed(hello.ServerName) {
		return s.ACME.getCertificate(hello)
	}
	if t := s.table.Load(); t != nil && t.def != nil {
		return t.def, nil
	}
	return nil, fmt.Errorf("%w for %q", ErrNoCertificate, hello.ServerName)
}

// Reload reads every certificate file again and publishes the new set. On
// error the current set stays and the error names the file.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(false)
}

// reloadLocked reloads the file sources (only those whose files changed,
// when changedOnly) and republishes if any was loaded. It reloads all or
// nothing.
func (s *Store) reloadLocked(changedOnly bool) error {
	next := make([]*source, len(s.sources))
	loaded := 0
	for i, src := range s.sources {
		next[i] = src
		if src.certFile == "" {
			continue
		}
		if changedOnly {
			st, err := statFiles(src.certFile, src.keyFile)
			if err != nil {
				return err
			}
			if st == src.stamp {
				continue
			}
		}
		cp := &source{certFile: src.certFile, keyFile: src.keyFile}
		if err := cp.load(); err != nil {
			return err
		}
		next[i] = cp
		loaded++
	}
	if loaded == 0 {
		return nil
	}
	s.sources = next
	s.rebuildLocked()
	s.logger().LogAttrs(context.Background(), slog.LevelInfo, "tlsmode: certificates reloaded", slog.Int("changed", loaded))
	return nil
}

// Watch checks the certificate files every interval (a second when zero or
// negative) and reloads those whose modification time or size changed,
// until ctx is done. A file caught half-written fails to parse and is
// tried again at the next check; failures are logged. Watch returns nil
// when ctx is done; run it in a goroutine owned by the host program.
func (s *Store) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		err := s.reloadLocked(true)
		s.mu.Unlock()
		if err != nil && err.Error() != lastErr {
			s.logger().LogAttrs(ctx, slog.LevelWarn, "tlsmode: certificate reload failed", slog.Any("error", err))
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
}

// Default returns the default certificate, or nil when the store is empty.
func (s *Store) Default() *tls.Certificate {
	if t := s.table.Load(); t != nil {
		return t.def
	}
	return nil
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
