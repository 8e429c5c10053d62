package tlsmode_test

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
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
