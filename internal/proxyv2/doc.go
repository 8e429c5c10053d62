// Package proxyv2 is lbkit's glue to github.com/pires/go-proxyproto: it
// encodes PROXY protocol v1 and v2 headers (with TLVs) and reads one header
// from the start of a connection, with a bound on its size. Its types are
// lbkit's own, so that the dependency's types stay out of lbkit's public API.
//
// Usage:
//
//	b, err := proxyv2.AppendV2(nil, proxyv2.Header{
//		Src:  netip.MustParseAddrPort("192.0.2.1:51000"),
//		Dst:  netip.MustParseAddrPort("198.51.100.1:443"),
//		TLVs: []proxyv2.TLV{{Type: proxyv2.TypeAuthority, Value: []byte("example.com")}},
//	})
//
//	h, rest, err := proxyv2.Read(conn, 4096) // conn has a read deadline
package proxyv2
