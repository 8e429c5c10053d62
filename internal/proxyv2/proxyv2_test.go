package proxyv2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// sig is the v2 signature of the PROXY protocol specification, section 2.2.
const sig = "0d0a0d0a000d0a515549540a"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	v4src = netip.MustParseAddrPort("192.168.0.1:56324")
	v4dst = netip.MustParseAddrPort("192.168.0.11:443")
	v6src = netip.MustParseAddrPort("[2001:db8::1]:56324")
	v6dst = netip.MustParseAddrPort("[2001:db8::2]:443")
)

// The golden headers follow the layouts and examples of haproxy's
// doc/proxy-protocol.txt: section 2.1 for v1, section 2.2 for v2.
func TestGoldenV1(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"tcp4", Header{Src: v4src, Dst: v4dst}, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"tcp6", Header{Src: v6src, Dst: v6dst}, "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"},
		{"worst case", Header{
			Src: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
			Dst: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
		}, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
		{"mixed families are mapped", Header{Src: v4src, Dst: v6dst}, "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n"},
		{"mapped source is IPv4", Header{Src: netip.MustParseAddrPort("[::ffff:192.168.0.1]:56324"), Dst: v4dst}, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"no destination", Header{Src: v4src}, "PROXY TCP4 192.168.0.1 0.0.0.0 56324 0\r\n"},
		{"local", Header{Local: true, Src: v4src, Dst: v4dst}, "PROXY UNKNOWN\r\n"},
		{"not IP", Header{}, "PROXY UNKNOWN\r\n"},
		{"TLVs ignored", Header{Src: v4src, Dst: v4dst, TLVs: []TLV{{TypeAuthority, []byte("x")}}}, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendV1(nil, tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGoldenV2(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"tcp4", Header{Src: v4src, Dst: v4dst},
			sig + "21 11 000c c0a80001 c0a8000b dc04 01bb"},
		{"tcp6", Header{Src: v6src, Dst: v6dst},
			sig + "21 21 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 dc04 01bb"},
		{"local", Header{Local: true},
			sig + "20 00 0000"},
		{"not IP is local", Header{},
			sig + "20 00 0000"},
		{"authority TLV", Header{Src: v4src, Dst: v4dst, TLVs: []TLV{{TypeAuthority, []byte("example.com")}}},
			sig + "21 11 001a c0a80001 c0a8000b dc04 01bb 02 000b 6578616d706c652e636f6d"},
		{"local keeps TLVs", Header{Local: true, TLVs: []TLV{{0xE0, []byte{1, 2}}}},
			sig + "20 00 0005 e0 0002 0102"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendV2(nil, tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("got  %x\nwant %x", got, want)
			}
		})
	}
}

func TestSSLTLV(t *testing.T) {
	tlv, err := SSL{Client: ClientSSL | ClientCertConn | ClientCertSess, Verify: 0, Version: "TLSv1.3", CN: "alice", Cipher: "TLS_AES_128_GCM_SHA256"}.TLV()
	if err != nil {
		t.Fatal(err)
	}
	// Section 2.2.5: client (1 byte), verify (4 bytes), then sub-TLVs.
	want := unhex(t, "07 00000000 21 0007 544c5376312e33 22 0005 616c696365 23 0016")
	want = append(want, "TLS_AES_128_GCM_SHA256"...)
	if tlv.Type != TypeSSL || !bytes.Equal(tlv.Value, want) {
		t.Fatalf("got %#x %x\nwant %x", tlv.Type, tlv.Value, want)
	}
}

func TestRead(t *testing.T) {
	v2, _ := AppendV2(nil, Header{Src: v6src, Dst: v6dst, TLVs: []TLV{{TypeAuthority, []byte("example.com")}}})
	big, _ := AppendV2(nil, Header{Src: v4src, Dst: v4dst, TLVs: []TLV{{0xE1, bytes.Repeat([]byte{'x'}, 3000)}}})
	tests := []struct {
		name     string
		in       []byte
		max      int
		want     Header
		wantRest string
		err      error
	}{
		{"v1", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /"), 4096,
			Header{Src: v4src, Dst: v4dst}, "GET /", nil},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), 4096, Header{Local: true}, "", nil},
		{"v2", append(v2, "hello"...), 4096,
			Header{Src: v6src, Dst: v6dst, TLVs: []TLV{{TypeAuthority, []byte("example.com")}}}, "hello", nil},
		{"v2 local", unhex(t, sig+"20 00 0000"), 4096, Header{Local: true}, "", nil},
		{"v2 mapped addresses are unmapped", unhex(t, sig+"21 21 0024 00000000000000000000ffffc0a80001 00000000000000000000ffffc0a8000b dc04 01bb"), 4096,
			Header{Src: v4src, Dst: v4dst}, "", nil},
		{"no header", []byte("GET / HTTP/1.1\r\n\r\n"), 4096, Header{}, "", ErrNoHeader},
		{"v2 signature prefix only", unhex(t, "0d0a0d0a000d0a5155495400 21 11 000c"), 4096, Header{}, "", ErrNoHeader},
		{"empty", nil, 4096, Header{}, "", ErrInvalid},
		{"truncated v1", []byte("PROXY TCP4 192.168.0.1"), 4096, Header{}, "", ErrInvalid},
		{"truncated v2", v2[:30], 4096, Header{}, "", ErrInvalid},
		{"v1 bad address", []byte("PROXY TCP4 192.168.0.300 192.168.0.11 1 2\r\n"), 4096, Header{}, "", ErrInvalid},
		{"v1 without CRLF", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n"), 4096, Header{}, "", ErrInvalid},
		{"v1 too long", []byte("PROXY TCP6 " + strings.Repeat("f", 200) + "\r\n"), 4096, Header{}, "", ErrInvalid},
		{"v2 bad version", unhex(t, sig+"31 11 000c c0a80001 c0a8000b dc04 01bb"), 4096, Header{}, "", ErrInvalid},
		{"v2 bad family", unhex(t, sig+"21 13 000c c0a80001 c0a8000b dc04 01bb"), 4096, Header{}, "", ErrInvalid},
		{"v2 short length", unhex(t, sig+"21 11 0004 c0a80001"), 4096, Header{}, "", ErrInvalid},
		{"v2 bad TLV", unhex(t, sig+"21 11 000f c0a80001 c0a8000b dc04 01bb 02 0009 61"), 4096, Header{}, "", ErrInvalid},
		{"v2 announced beyond the bound", big, 2048, Header{}, "", ErrTooLarge},
		{"v2 within a larger bound", big, 4096,
			Header{Src: v4src, Dst: v4dst, TLVs: []TLV{{0xE1, bytes.Repeat([]byte{'x'}, 3000)}}}, "", nil},
		{"v2 max length announced", unhex(t, sig+"21 11 ffff c0a80001"), 70000, Header{}, "", ErrInvalid},
		{"v2 beyond the parser's 4096", unhex(t, sig+"21 11 1001 c0a80001"), 70000, Header{}, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, rest, err := Read(bytes.NewReader(tt.in), tt.max)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Local != tt.want.Local || h.Src != tt.want.Src || h.Dst != tt.want.Dst || len(h.TLVs) != len(tt.want.TLVs) {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
			for i := range h.TLVs {
				if h.TLVs[i].Type != tt.want.TLVs[i].Type || !bytes.Equal(h.TLVs[i].Value, tt.want.TLVs[i].Value) {
					t.Fatalf("TLV %d = %+v, want %+v", i, h.TLVs[i], tt.want.TLVs[i])
				}
			}
			if string(rest) != tt.wantRest {
				t.Fatalf("rest = %q, want %q", rest, tt.wantRest)
			}
		})
	}
}

// TestReadStopsAtBound checks that Read consumes no more than its bound
// from a peer that keeps sending.
func TestReadStopsAtBound(t *testing.T) {
	r := &countingReader{b: append([]byte("PROXY TCP4 192.168.0.1"), bytes.Repeat([]byte{'1'}, 1<<20)...)}
	if _, _, err := Read(r, 200); err == nil {
		t.Fatal("no error")
	}
	if r.n > 200 {
		t.Fatalf("read %d bytes, bound 200", r.n)
	}
}

type countingReader struct {
	b []byte
	n int
}

func (r *countingReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.n:])
	r.n += n
	return n, nil
}

func TestRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Src: v4src, Dst: v4dst},
		{Src: v6src, Dst: v6dst, TLVs: []TLV{{TypeALPN, []byte("h2")}, {0xE5, []byte("app")}}},
	} {
		for _, enc := range []func([]byte, Header) ([]byte, error){AppendV1, AppendV2} {
			b, err := enc(nil, h)
			if err != nil {
				t.Fatal(err)
			}
			got, rest, err := Read(bytes.NewReader(b), MinRead)
			if err != nil || len(rest) != 0 || got.Src != h.Src || got.Dst != h.Dst {
				t.Fatalf("%x: got %+v %q %v", b, got, rest, err)
			}
		}
	}
}

func FuzzRead(f *testing.F) {
	v2, _ := AppendV2(nil, Header{Src: v6src, Dst: v6dst, TLVs: []TLV{{TypeAuthority, []byte("example.com")}}})
	ssl, _ := SSL{Client: ClientSSL, Version: "TLSv1.3", CN: "cn"}.TLV()
	v2ssl, _ := AppendV2(nil, Header{Src: v4src, Dst: v4dst, TLVs: []TLV{ssl}})
	v1, _ := AppendV1(nil, Header{Src: v4src, Dst: v4dst})
	for _, seed := range [][]byte{v1, v2, v2ssl, []byte("PROXY UNKNOWN\r\n"), unhex(f, sig+"20 00 0000"), []byte("GET /"), v2[:20], nil} {
		f.Add(seed, 4096)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = max % 70000
		r := bytes.NewReader(in)
		h, rest, err := Read(r, max)
		if err != nil {
			return
		}
		unread := in[len(in)-r.Len():]
		bound := MinRead
		if max > bound {
			bound = max
		}
		if len(in) > bound && len(rest) > bound {
			t.Fatalf("rest of %d bytes beyond the bound %d", len(rest), bound)
		}
		if !h.Local && (!h.Src.IsValid() || !h.Dst.IsValid()) {
			t.Fatalf("PROXY header without addresses: %+v", h)
		}
		if !bytes.HasSuffix(in, append(append([]byte(nil), rest...), unread...)) {
			t.Fatalf("rest %q is not what followed the header", rest)
		}
		// What was read re-encodes and reads back the same.
		b, err := AppendV2(nil, h)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", h, err)
		}
		h2, _, err := Read(bytes.NewReader(b), len(b))
		if err != nil || h2.Src != h.Src || h2.Dst != h.Dst || h2.Local != h.Local || len(h2.TLVs) != len(h.TLVs) {
			t.Fatalf("round trip of %+v: %+v, %v", h, h2, err)
		}
	})
}
