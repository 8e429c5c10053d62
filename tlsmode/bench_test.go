package tlsmode_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

func BenchmarkStoreGetCertificate(b *testing.B) {
	ca := testutil.NewCA(b)
	s := &tlsmode.Store{}
	s.Add(ca.Leaf(b, "default.test"))
	s.Add(ca.Leaf(b, "*.example.test"))
	s.Add(ca.Leaf(b, "www.example.test"))
	for _, sni := range []string{"www.example.test", "shop.example.test", "unknown.test"} {
		hello := &tls.ClientHelloInfo{ServerName: sni}
		b.Run(sni, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := clientHello(b, &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}})
	b.ReportAllocs()
	b.SetBytes(int64(len(hello)))
	for b.Loop() {
		if _, err := tlsmode.ParseClientHello(hello); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake compares a full TLS 1.3 handshake (ECDSA P-256, no
// resumption) served with a tlsmode configuration against crypto/tls's
// defaults with the same certificate: the profile and the Store cost
// nothing measurable next to the handshake's cryptography.
func BenchmarkHandshake(b *testing.B) {
	ca := testutil.NewCA(b)
	cert := ca.Leaf(b, "bench.test")
	store := &tlsmode.Store{}
	store.Add(cert)
	configs := []struct {
		name string
		cfg  *tls.Config
	}{
		{"crypto-tls-defaults", &tls.Config{Certificates: []tls.Certificate{cert}}},
		{"tlsmode-intermediate", tlsmode.Config{Certificates: store}.ServerConfig()},
	}
	client := ca.ClientConfig("bench.test")
	client.ClientSessionCache = nil
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cc, sc := net.Pipe()
				done := make(chan error, 1)
				go func() { done <- tls.Server(sc, c.cfg).Handshake() }()
				if err := tls.Client(cc, client).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				cc.Close()
				sc.Close()
			}
		})
	}
}

// BenchmarkPeekClientHello measures the passthrough peek of one connection:
// a fresh lb.Conn over the client's first flight (record headers peeked,
// the hello parsed, SNI and ALPN stored in Conn.Info).
func BenchmarkPeekClientHello(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		// Go's defaults offer the X25519MLKEM768 key share: a 1.5 KB hello.
		{"tls13", &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}}},
		{"tls12", &tls.Config{ServerName: "www.example.test", MaxVersion: tls.VersionTLS12}},
	} {
		hello := clientHello(b, tc.cfg)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(hello)))
			r := bytes.NewReader(nil)
			for b.Loop() {
				r.Reset(hello)
				c := lb.NewConn(&bytesConn{r: r}, "bench")
				if err := peek(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
