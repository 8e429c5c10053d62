package tlsmode

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/lbkit/lbkit/lb"
)

// Upstream describes the TLS lbkit speaks to servers when it bridges:
// after terminating the client's TLS it opens a new TLS session to the
// server. Server certificates are verified by default; the zero value
// verifies them against the system roots with the server name taken from
// the server's address.
type Upstream struct {
	// RootCAs verifies server certificates. Nil means the system roots.
	RootCAs *x509.CertPool

	// ServerName is the name sent (SNI) and verified. Empty means the
	// client's SNI when UseClientSNI is set and the client sent one, else
	// the host part of the server's address.
	ServerName string

	// UseClientSNI sends and verifies the name the client asked for (L4
	// bridging, where the Pool knows the client's SNI).
	UseClientSNI bool

	// InsecureSkipVerify turns verification of server certificates off.
	// It must be asked for explicitly: anyone on the path to the servers
	// can then read and change the traffic.
	InsecureSkipVerify bool

	// Profile limits versions and cipher suites; the zero value is
	// Intermediate.
	Profile Profile

	// Certificates are presented to servers that ask for a client
	// certificate.
	Certificates []tls.Certificate
}

// ClientConfig returns a new *tls.Config for connections to servers.
func (u Upstream) ClientConfig() *tls.Config {
	cfg := &tls.Config{
		RootCAs:            u.RootCAs,
		ServerName:         u.ServerName,
		InsecureSkipVerify: u.InsecureSkipVerify,
		Certificates:       u.Certificates,
	}
	u.Profile.Apply(cfg)
	return cfg
}

// Bridge makes pool encrypt its server connections (L4 bridging): it sets
// pool.TLS and, with UseClientSNI, pool.TLSServerName. Call it while
// configuring the pool, before first use. The PROXY header, when the pool
// writes one, still goes first, in clear.
func (u Upstream) Bridge(pool *lb.Pool) {
	pool.TLS = u.ClientConfig()
	if u.UseClientSNI && u.ServerName == "" {
		pool.TLSServerName = clientSNI
	}
}

func clientSNI(info *lb.ConnInfo, _ *lb.Server) string {
	if info == nil {
		return ""
	}
	return info.SNI
}

// BridgeHTTP makes rp speak HTTPS to its servers (L7 bridging), HTTP/2
// when a server offers it through ALPN, HTTP/1.1 otherwise. Call it while
// configuring rp, before the first request. UseClientSNI does not apply:
// server connections are shared by requests from many clients, so the
// name is ServerName or the server's address.
func (u Upstream) BridgeHTTP(rp *lb.ReverseProxy) {
	rp.Scheme = "https"
	rp.TLSClientConfig = u.ClientConfig()
}

// LoadCertPool reads PEM certificates (a CA bundle) from file into a new
// pool, for Upstream.RootCAs or Config.ClientCAs.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsmode: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s: no certificate", ErrPEM, file)
	}
	return p, nil
}
