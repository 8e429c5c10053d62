package proxyproto_test

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// BenchmarkHeaderWrite measures writing one header per server connection.
func BenchmarkHeaderWrite(b *testing.B) {
	info := &lb.ConnInfo{
		Remote: netip.MustParseAddrPort("[2001:db8::7]:50123"),
		Local:  netip.MustParseAddrPort("[2001:db8::1]:443"),
		SNI:    "example.com",
	}
	s := &lb.Server{Name: "s", Addr: "127.0.0.1:1"}
	for _, bc := range []struct {
		name string
		hf   lb.HeaderFunc
	}{
		{"v1", proxyproto.V1()},
		{"v2", proxyproto.V2(proxyproto.V2Options{})},
		{"v2-ssl-authority", proxyproto.V2(proxyproto.V2Options{SSL: true, Authority: true})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.hf(io.Discard, info, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHeaderRead measures the reception path of one connection.
func BenchmarkHeaderRead(b *testing.B) {
	var buf bytes.Buffer
	proxyproto.V2(proxyproto.V2Options{Authority: true})(&buf, &lb.ConnInfo{
		Remote: netip.MustParseAddrPort("192.0.2.7:50123"),
		Local:  netip.MustParseAddrPort("198.51.100.1:443"),
		SNI:    "example.com",
	}, nil)
	hdr := append(buf.Bytes(), "GET / HTTP/1.1\r\n"...)
	l := &proxyproto.Listener{Trusted: loopback}
	b.ReportAllocs()
	for b.Loop() {
		c := &memConn{r: bytes.NewReader(hdr)}
		if _, err := proxyproto.ReadHeader(l, c); err != nil {
			b.Fatal(err)
		}
	}
}
