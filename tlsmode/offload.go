package tlsmode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Config describes the TLS a frontend terminates. The zero value is not
// usable: set Certificates or GetCertificate.
type Config struct {
	// Profile chooses versions and cipher suites; the zero value is
	// Intermediate.
	Profile Profile

	// Certificates chooses the certificate by SNI, and answers ACME
	// TLS-ALPN-01 challenges when it has an ACME manager (set Store.ACME
	// before building the *tls.Config: it adds the "acme-tls/1" protocol).
	Certificates *Store

	// GetCertificate, when set, is used instead of Certificates.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// NextProtos are the ALPN protocols offered, in preference order. Nil
	// means none for ServerConfig and "h2", "http/1.1" for HTTPConfig.
	NextProtos []string

	// ClientAuth asks for client certificates (mTLS); ClientCAs verifies
	// them. The zero value asks for none. The verified client certificate
	// is in ConnInfo.TLS (see ClientCN) and http.Request.TLS.
	ClientAuth tls.ClientAuthType
	ClientCAs  *x509.CertPool

	// TicketKeys, when set, gives the configs built from c session ticket
	// keys shared with every other config it serves, so sessions resume
	// across frontends; run its Run method. Nil leaves crypto/tls's own
	// keys, private to each config. One whose Secret is too short (see
	// TicketKeys.Validate, which Config.Validate calls) disables session
	// tickets on the configs built from c.
	TicketKeys *TicketKeys
}

// ServerConfig returns a new *tls.Config for a frontend that terminates
// TLS: the profile, the certificate lookup, ALPN and client
// authentication of c. Session tickets stay on (resumed handshakes are far
// cheaper), with c.TicketKeys's keys when it is set. The result may be
// adjusted before use and must not be changed afterwards.
func (c Config) ServerConfig() *tls.Config {
	cfg := &tls.Config{
		GetCertificate: c.GetCertificate,
		NextProtos:     append([]string(nil), c.NextProtos...),
		ClientAuth:     c.ClientAuth,
		ClientCAs:      c.ClientCAs,
	}
	if cfg.GetCertificate == nil && c.Certificates != nil {
		cfg.GetCertificate = c.Certificates.GetCertificate
	}
	c.Profile.Apply(cfg)
	if c.Certificates != nil && c.Certificates.ACME != nil {
		cfg.NextProtos = append(cfg.NextProtos, acmeALPN)
	}
	if c.TicketKeys != nil {
		// A refused secret disables tickets on cfg; Validate reports it.
		_ = c.TicketKeys.Register(cfg)
	}
	return cfg
}

// Validate reports what ServerConfig and HTTPConfig cannot: a TicketKeys
// whose Secret is too short (an error wrapping ErrTicketSecret), with
// which the configs they build issue no session tickets.
func (c Config) Validate() error {
	if c.TicketKeys != nil {
		return c.TicketKeys.Validate()
	}
	return nil
}

// HTTPConfig is ServerConfig for an http.Server (L7 offloading or
// bridging): ALPN offers HTTP/2 then HTTP/1.1 unless NextProtos says
// otherwise, and net/http serves HTTP/2 to clients that choose it. Use it as
// http.Server.TLSConfig with ServeTLS(ln, "", ""), or with
// tls.NewListener and Serve.
func (c Config) HTTPConfig() *tls.Config {
	if c.NextProtos == nil {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	return c.ServerConfig()
}

// Offload returns a Backend that terminates TLS on each connection (TLS
// offloading at L4) and hands next a Conn that reads and writes plain
// bytes: typically a Pool, which then copies them to the servers in clear,
// or encrypts again when the Pool has TLS set (bridging). config is used as
// is (see Config.ServerConfig).
//
// The handshake is bounded by the connection's read deadline (the
// TCPFrontend's HandshakeTimeout) and by HandshakeTimeout. After it,
// Conn.Info has TLS (the connection state, with the client's certificates
// under mTLS), SNI and, when one was negotiated, ALPN (the protocol chosen,
// not the list the client offered). Failed handshakes close the
// connection and are logged at Debug level.
func Offload(config *tls.Config, next lb.Backend) *OffloadBackend {
	return &OffloadBackend{Config: config, Next: next}
}

// OffloadBackend is the Backend that Offload returns. Set its fields
// before it serves; it is then safe for concurrent use.
type OffloadBackend struct {
	// Config is the TLS server configuration.
	Config *tls.Config
	// Next serves the decrypted connections.
	Next lb.Backend
	// HandshakeTimeout bounds each handshake, when the connection has no
	// earlier deadline. Zero means lb.DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Logger receives failed handshakes at Debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// ServeConn terminates TLS on c and passes the decrypted connection to
// Next.
func (o *OffloadBackend) ServeConn(ctx context.Context, c *lb.Conn) {
	tc := tls.Server(c, o.Config)
	hctx, cancel := context.WithTimeout(ctx, o.handshakeTimeout())
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		logger(o.Logger).LogAttrs(ctx, slog.LevelDebug, "tlsmode: handshake failed",
			slog.String("client", c.Info.Remote.String()), slog.Any("error", err))
		tc.Close()
		return
	}
	tcc := c.WithConn(tc)
	st := tc.ConnectionState()
	tcc.Info.TLS = &st
	tcc.Info.SNI = st.ServerName
	if st.NegotiatedProtocol != "" {
		tcc.Info.ALPN = []string{st.NegotiatedProtocol}
	}
	o.Next.ServeConn(ctx, tcc)
}

func (o *OffloadBackend) handshakeTimeout() time.Duration {
	if o.HandshakeTimeout > 0 {
		return o.HandshakeTimeout
	}
	return lb.DefaultHandshakeTimeout
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// ClientCN returns the common name of the verified client certificate of
// a connection whose TLS lbkit terminated, or "" when there is none. PROXY
// protocol v2-ssl-cn writers send it.
func ClientCN(info *lb.ConnInfo) string {
	if info == nil || info.TLS == nil || len(info.TLS.PeerCertificates) == 0 {
		return ""
	}
	return info.TLS.PeerCertificates[0].Subject.CommonName
}
