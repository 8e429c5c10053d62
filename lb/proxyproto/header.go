package proxyproto

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"

	"github.com/lbkit/lbkit/internal/proxyv2"
	"github.com/lbkit/lbkit/lb"
)

// TLV is an application TLV of a PROXY protocol v2 header. Types 0xE0
// to 0xEF are reserved for applications; lbkit writes the standard ones
// itself (ALPN, AUTHORITY, SSL) when [V2Options] asks for them.
type TLV struct {
	Type  byte
	Value []byte
}

// V2Options selects the TLVs a PROXY protocol v2 header carries. The
// zero value writes the addresses alone, as HAProxy's send-proxy-v2 does.
type V2Options struct {
	// SSL writes the PP2_TYPE_SSL TLV: whether the client spoke TLS to
	// lbkit, whether it presented a certificate, whether that certificate
	// was verified, and the TLS version ("TLSv1.3") and cipher suite (its
	// IANA name, as crypto/tls names it) of the session. Without a TLS
	// session terminated by lbkit the TLV says the client did not use TLS.
	// HAProxy: send-proxy-v2-ssl.
	SSL bool
	// CN also writes the common name of the client certificate in the SSL
	// TLV, when the client presented one. It implies SSL. HAProxy:
	// send-proxy-v2-ssl-cn.
	CN bool
	// Authority writes the PP2_TYPE_AUTHORITY TLV: the server name (SNI)
	// the client asked for, when it sent one.
	Authority bool
	// ALPN writes the PP2_TYPE_ALPN TLV: the application protocol
	// negotiated with the client, when lbkit terminated TLS and one was.
	ALPN bool
	// TLVs, when set, returns application TLVs to append for a client
	// connection (info is nil for a connection lbkit opens on its own
	// behalf). It is called concurrently and must not retain the result.
	TLVs func(info *lb.ConnInfo, s *lb.Server) []TLV
}

// V1 returns an [lb.HeaderFunc] that writes a PROXY protocol version 1 (text)
// header: "PROXY TCP4 <client> <dest> <client port> <dest port>\r\n", or TCP6
// when either address is IPv6 (an IPv4 address is then written IPv4-mapped).
// With a nil *[lb.ConnInfo] (a connection lbkit opens on its own behalf: health
// check, client-side dial) or a client address that is not an IP address it
// writes "PROXY UNKNOWN\r\n", and the server uses the socket's addresses.
// HAProxy: send-proxy.
func V1() lb.HeaderFunc {
	return func(w io.Writer, info *lb.ConnInfo, s *lb.Server) error {
		var h proxyv2.Header
		if info != nil {
			h.Src, h.Dst = info.Remote, info.Local
		} else {
			h.Local = true
		}
		b, err := proxyv2.AppendV1(make([]byte, 0, 108), h)
		if err != nil {
			return fmt.Errorf("proxyproto: v1: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
}

// V2 returns an [lb.HeaderFunc] that writes a PROXY protocol version 2
// (binary) header with the TLVs opts selects. The addresses are written as
// TCP over IPv4, or over IPv6 when either is IPv6. With a nil *[lb.ConnInfo] (a
// connection lbkit opens on its own behalf: health check, client-side dial)
// it writes the LOCAL command; a client address that is not an IP address
// is written as LOCAL with the UNSPEC family, as HAProxy does: either way
// the server uses the socket's addresses. TLVs are written in both cases.
// HAProxy: send-proxy-v2, send-proxy-v2-ssl, send-proxy-v2-ssl-cn.
//
// The returned HeaderFunc is safe for concurrent use.
func V2(opts V2Options) lb.HeaderFunc {
	return func(w io.Writer, info *lb.ConnInfo, s *lb.Server) error {
		var h proxyv2.Header
		if info != nil {
			h.Src, h.Dst = info.Remote, info.Local
			var err error
			if h.TLVs, err = opts.tlvs(info); err != nil {
				return err
			}
		} else {
			h.Local = true
		}
		if opts.TLVs != nil {
			for _, t := range opts.TLVs(info, s) {
				h.TLVs = append(h.TLVs, proxyv2.TLV{Type: t.Type, Value: t.Value})
			}
		}
		b, err := proxyv2.AppendV2(make([]byte, 0, 64), h)
		if err != nil {
			return fmt.Errorf("proxyproto: v2: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
}

// tlvs returns the standard TLVs opts selects for the client info.
func (opts *V2Options) tlvs(info *lb.ConnInfo) ([]proxyv2.TLV, error) {
	var out []proxyv2.TLV
	st := info.TLS
	if opts.ALPN && st != nil && st.NegotiatedProtocol != "" {
		out = append(out, proxyv2.TLV{Type: proxyv2.TypeALPN, Value: []byte(st.NegotiatedProtocol)})
	}
	if opts.Authority {
		sni := info.SNI
		if sni == "" && st != nil {
			sni = st.ServerName
		}
		if sni != "" {
			out = append(out, proxyv2.TLV{Type: proxyv2.TypeAuthority, Value: []byte(sni)})
		}
	}
	if opts.SSL || opts.CN {
		t, err := sslTLV(st, opts.CN)
		if err != nil {
			return nil, fmt.Errorf("proxyproto: v2: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// sslTLV builds the SSL TLV from the client's TLS session, as HAProxy does:
// the client bits, verify 0 only for a presented and verified certificate,
// the version and the cipher, and the certificate's common name if cn.
func sslTLV(st *tls.ConnectionState, cn bool) (proxyv2.TLV, error) {
	ssl := proxyv2.SSL{Verify: 1}
	if st != nil {
		ssl.Client = proxyv2.ClientSSL
		ssl.Version = tlsVersionName(st.Version)
		ssl.Cipher = tls.CipherSuiteName(st.CipherSuite)
		if len(st.PeerCertificates) > 0 {
			ssl.Client |= proxyv2.ClientCertSess
			if !st.DidResume {
				ssl.Client |= proxyv2.ClientCertConn
			}
			if len(st.VerifiedChains) > 0 {
				ssl.Verify = 0
			}
			if cn {
				ssl.CN = st.PeerCertificates[0].Subject.CommonName
			}
		}
	}
	return ssl.TLV()
}

// tlsVersionName names a TLS version the way OpenSSL and HAProxy do
// ("TLSv1.2").
func tlsVersionName(v uint16) string {
	name := tls.VersionName(v) // "TLS 1.2", "SSL 3.0" or "0x0305"
	if rest, ok := strings.CutPrefix(name, "TLS "); ok {
		return "TLSv" + rest
	}
	if rest, ok := strings.CutPrefix(name, "SSL "); ok {
		return "SSLv" + rest
	}
	return name
}
