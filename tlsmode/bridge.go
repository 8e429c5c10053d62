package tlsmode

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"sync"

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

	// UseClientSNI sends and verifies the name the client asked for in
	// its TLS handshake with lbkit.
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

	// HTTP2 lets BridgeHTTP speak HTTP/2 to servers that offer it (ALPN).
	// False, the default, keeps HTTP/1.1 (see lb.ReverseProxy.ServerHTTP2).
	HTTP2 bool
}

// ClientConfig returns a new *tls.Config for connections to servers. It
// has a session cache, so that new connections to a server resume earlier
// sessions: an abbreviated handshake instead of a full one.
func (u Upstream) ClientConfig() *tls.Config {
	cfg := &tls.Config{
		RootCAs:            u.RootCAs,
		ServerName:         u.ServerName,
		InsecureSkipVerify: u.InsecureSkipVerify,
		Certificates:       u.Certificates,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
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

// BridgeHTTP makes rp speak HTTPS to its servers (L7 bridging): HTTP/1.1,
// or HTTP/2 when HTTP2 is set and the server offers it through ALPN. Call it while
// configuring rp, before the first request.
//
// With UseClientSNI (and no ServerName), the name sent to and verified on
// the server is the SNI of the client's connection (http.Request.TLS), or
// the server's address when the client sent none. Server connections are
// then kept apart per name: up to MaxBridgeNames names get their own
// connection pool, and requests for further names use the server's
// address. This replaces rp.NewTransport.
func (u Upstream) BridgeHTTP(rp *lb.ReverseProxy) {
	rp.Scheme = "https"
	rp.TLSClientConfig = u.ClientConfig()
	rp.ServerHTTP2 = u.HTTP2
	if !u.UseClientSNI || u.ServerName != "" {
		return
	}
	base := rp.TLSClientConfig
	rp.NewTransport = func(_ *lb.Pool, dial lb.DialFunc) http.RoundTripper {
		return &sniTransport{new: func(name string) http.RoundTripper {
			cfg := base.Clone()
			cfg.ServerName = name
			// The proxy's own kind of transport (its HTTP/1.1 engine),
			// verifying this name.
			return rp.ServerTransport(dial, cfg)
		}}
	}
}

// MaxBridgeNames bounds the server names for which BridgeHTTP with
// UseClientSNI keeps separate connection pools, so that clients cannot make
// it hold unbounded state by sending many names.
const MaxBridgeNames = 256

// sniTransport keeps one transport per client SNI, since connections to a
// server are shared only by requests for the same name.
type sniTransport struct {
	new func(name string) http.RoundTripper

	byName sync.Map // string → http.RoundTripper
	mu     sync.Mutex
	n      int
}

func (t *sniTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	name := ""
	if req.TLS != nil {
		name = req.TLS.ServerName
	}
	return t.transport(name).RoundTrip(req)
}

func (t *sniTransport) transport(name string) http.RoundTripper {
	if v, ok := t.byName.Load(name); ok {
		return v.(http.RoundTripper)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.byName.Load(name); ok {
		return v.(http.RoundTripper)
	}
	if t.n >= MaxBridgeNames && name != "" {
		return t.transportLocked("")
	}
	return t.transportLocked(name)
}

func (t *sniTransport) transportLocked(name string) http.RoundTripper {
	if v, ok := t.byName.Load(name); ok {
		return v.(http.RoundTripper)
	}
	tr := t.new(name)
	t.byName.Store(name, tr)
	t.n++
	return tr
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
