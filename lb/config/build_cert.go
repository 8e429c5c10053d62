package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/tlsmode"
)

// acmeALPN is the ALPN protocol of TLS-ALPN-01 challenges.
const acmeALPN = "acme-tls/1"

// certSet is the certificates of one frontend, chosen by SNI: the custom
// ones (the first listed is the default) and those obtained over ACME.
type certSet struct {
	store *tlsmode.Store
	acme  []*acmeCert
}

// GetCertificate chooses the certificate of a handshake: an ACME
// challenge goes to the manager of its name; otherwise a custom
// certificate for the name, then an ACME one, then the default.
func (s *certSet) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s == nil {
		return nil, errors.New("config: no certificate")
	}
	challenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPN
	if !challenge {
		if c := s.store.Lookup(hello.ServerName); c != nil {
			return c, nil
		}
	}
	for _, a := range s.acme {
		if a.allows(hello.ServerName) {
			return a.acme.GetCertificate(hello)
		}
	}
	if challenge {
		return nil, fmt.Errorf("config: no ACME certificate for %q", hello.ServerName)
	}
	if c := s.store.Default(); c != nil {
		return c, nil
	}
	if len(s.acme) > 0 && hello.ServerName == "" {
		h := *hello
		h.ServerName = s.acme[0].hosts[0]
		return s.acme[0].acme.GetCertificate(&h)
	}
	return nil, fmt.Errorf("config: no certificate for %q", hello.ServerName)
}

// acmeCert is a Let's Encrypt certificate of the document: its ACME
// manager, kept across Apply while its names stay, and what it obtained.
type acmeCert struct {
	id    string
	key   string // names, for reuse across Apply
	hosts []string
	acme  *tlsmode.ACME

	mu     sync.Mutex
	leaf   *x509.Certificate
	err    error
	cancel context.CancelFunc // ends the first issuance
}

func (a *acmeCert) allows(name string) bool {
	return slices.Contains(a.hosts, strings.TrimSuffix(strings.ToLower(name), "."))
}

// customCert is a parsed custom certificate.
type customCert struct {
	cert tls.Certificate
}

// buildCerts parses the custom certificates and prepares the ACME managers
// of the Let's Encrypt ones, reusing those whose names did not change.
func (rt *Runtime) buildCerts(doc *Document) (map[string]*customCert, map[string]*acmeCert, error) {
	custom := map[string]*customCert{}
	acmes := map[string]*acmeCert{}
	for i := range doc.Certificates {
		c := &doc.Certificates[i]
		if c.Letsencrypt == nil {
			cert, err := ParseChain(c.CertificateChain)
			if err != nil {
				return nil, nil, fmt.Errorf("certificate %q: %w", c.ID, err)
			}
			custom[c.ID] = &customCert{cert: cert}
			continue
		}
		hosts := []string{strings.ToLower(c.Letsencrypt.CommonName)}
		for _, n := range c.Letsencrypt.SubjectAlternativeName {
			if n = strings.ToLower(n); !slices.Contains(hosts, n) {
				hosts = append(hosts, n)
			}
		}
		key := strings.Join(hosts, ",")
		if old := rt.acmes[c.ID]; old != nil && old.key == key {
			acmes[c.ID] = old
			continue
		}
		o := rt.opts.ACME
		m, err := tlsmode.NewACME(tlsmode.ACMEConfig{DirectoryURL: o.DirectoryURL, Hosts: hosts, Email: o.Email, CacheDir: o.CacheDir, HTTPClient: o.HTTPClient})
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %q: %w", c.ID, err)
		}
		acmes[c.ID] = &acmeCert{id: c.ID, key: key, hosts: hosts, acme: m}
	}
	return custom, acmes, nil
}

// certSetOf builds the certificate set of f.
func certSetOf(f *Frontend, custom map[string]*customCert, acmes map[string]*acmeCert) (*certSet, error) {
	if len(f.CertificateIDs) == 0 {
		return nil, nil
	}
	s := &certSet{store: &tlsmode.Store{}}
	for _, id := range f.CertificateIDs {
		if c := custom[id]; c != nil {
			if err := s.store.Add(c.cert); err != nil {
				return nil, fmt.Errorf("certificate %q: %w", id, err)
			}
		} else if a := acmes[id]; a != nil {
			s.acme = append(s.acme, a)
		}
	}
	return s, nil
}

// obtain asks the CA for a's certificate once the frontends answer its
// challenges, retrying with back-off until it has one or ctx ends. The
// ACME manager renews it from then on, at handshakes.
func (rt *Runtime) obtain(ctx context.Context, a *acmeCert) {
	backoff := time.Second
	for {
		// A hello that supports ECDSA, as current clients do.
		hello := &tls.ClientHelloInfo{
			ServerName:        a.hosts[0],
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:   []tls.CurveID{tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		}
		cert, err := a.acme.GetCertificate(hello)
		if err == nil && cert != nil && cert.Leaf == nil && len(cert.Certificate) > 0 {
			cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
		}
		a.mu.Lock()
		if err == nil {
			a.leaf, a.err = cert.Leaf, nil
		} else {
			a.err = err
		}
		a.mu.Unlock()
		if err == nil {
			rt.logger.Info("certificate obtained", "certificate", a.id, "names", a.hosts)
			return
		}
		rt.logger.Warn("certificate not obtained yet", "certificate", a.id, "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}

// Certificate returns the certificate id of the running document with its
// read-only fields filled from the certificate in use: for a Let's
// Encrypt certificate, status pending until it is obtained, then ready,
// or error with the reason of the last failure while none was obtained.
// The chain and its key are left out.
func (rt *Runtime) Certificate(id string) (Certificate, bool) {
	rt.mu.RLock()
	doc := rt.doc
	a := rt.acmes[id]
	rt.mu.RUnlock()
	if doc == nil {
		return Certificate{}, false
	}
	for _, c := range doc.Certificates {
		if c.ID != id {
			continue
		}
		out := c
		if c.Letsencrypt == nil {
			if err := out.Inspect(); err != nil {
				return Certificate{}, false
			}
			out.CertificateChain = ""
			return out, true
		}
		if a == nil {
			out.Status = CertificatePending
			return out, true
		}
		a.mu.Lock()
		leaf, err := a.leaf, a.err
		a.mu.Unlock()
		switch {
		case leaf != nil:
			out.FillFrom(leaf)
		case err != nil:
			out.Status = CertificateError
			msg := err.Error()
			out.StatusDetails = &msg
		default:
			out.Status = CertificatePending
		}
		return out, true
	}
	return Certificate{}, false
}

// parsePrefix parses an ACL's ip_subnet: a CIDR subnet or one address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip_subnet %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
