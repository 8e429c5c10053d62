package tlsmode_test

import (
	"crypto/tls"
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
