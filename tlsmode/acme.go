package tlsmode

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// LetsEncryptURL is the directory of Let's Encrypt's production ACME
// service, the default of ACMEConfig.DirectoryURL.
const LetsEncryptURL = autocert.DefaultACMEDirectory

const acmeALPN = acme.ALPNProto

// ACMEConfig configures certificate issuance over ACME (RFC 8555).
type ACMEConfig struct {
	// DirectoryURL is the ACME directory. Empty means LetsEncryptURL.
	DirectoryURL string

	// Hosts are the only names certificates are requested for: a client
	// asking for any other name must not make lbkit ask the CA. Required.
	Hosts []string

	// Email is the account's contact address; empty means none.
	Email string

	// CacheDir keeps the account key and certificates across restarts.
	// Empty means memory only (a new account and certificates at every
	// start, which public CAs rate-limit).
	CacheDir string

	// RenewBefore is how long before expiry a certificate is renewed. Zero
	// means 30 days (or a third of the lifetime of short-lived
	// certificates, whichever is less).
	RenewBefore time.Duration

	// HTTPClient talks to the ACME server. Nil means http.DefaultClient.
	HTTPClient *http.Client
}

// ACME obtains certificates from an ACME certificate authority (Let's
// Encrypt and others) on the first handshake that asks for one of its
// hosts, caches them and renews them before they expire. It proves control
// of the name by TLS-ALPN-01, answered by GetCertificate on the TLS port
// (put it in a Store and serve with Config, which offers the "acme-tls/1"
// protocol), and by HTTP-01 when HTTPHandler serves port 80. It is built on
// golang.org/x/crypto/acme/autocert, and safe for concurrent use.
type ACME struct {
	m     *autocert.Manager
	hosts []string
}

// NewACME returns an ACME manager for cfg.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if len(cfg.Hosts) == 0 {
		return nil, fmt.Errorf("tlsmode: acme: no hosts")
	}
	hosts := make([]string, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hosts[i] = strings.TrimSuffix(strings.ToLower(h), ".")
	}
	dir := cfg.DirectoryURL
	if dir == "" {
		dir = LetsEncryptURL
	}
	m := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		HostPolicy:  autocert.HostWhitelist(hosts...),
		Email:       cfg.Email,
		RenewBefore: cfg.RenewBefore,
		Client:      &acme.Client{DirectoryURL: dir, HTTPClient: cfg.HTTPClient},
	}
	if cfg.CacheDir != "" {
		m.Cache = autocert.DirCache(cfg.CacheDir)
	}
	return &ACME{m: m, hosts: hosts}, nil
}

// GetCertificate returns the certificate for the name of hello, obtaining
// it first when needed (the handshake waits), or answers a TLS-ALPN-01
// challenge. Use it through a Store, or as tls.Config.GetCertificate with
// "acme-tls/1" in NextProtos.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.getCertificate(hello)
}

func (a *ACME) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := a.m.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("tlsmode: acme: %w", err)
	}
	return c, nil
}

// HTTPHandler answers HTTP-01 challenges under /.well-known/acme-challenge/
// and passes every other request to next; nil next redirects them to
// https. Serve it on port 80. Calling it enables HTTP-01, which is tried
// after TLS-ALPN-01. A port in the Host header of a challenge request
// (the validation of a server on another port than 80) is ignored.
func (a *ACME) HTTPHandler(next http.Handler) http.Handler {
	h := a.m.HTTPHandler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			if host, _, err := net.SplitHostPort(r.Host); err == nil {
				r = r.Clone(r.Context())
				r.Host = host
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (a *ACME) allowed(name string) bool {
	return slices.Contains(a.hosts, strings.TrimSuffix(strings.ToLower(name), "."))
}

func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPN
}
