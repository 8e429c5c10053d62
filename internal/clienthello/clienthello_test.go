package clienthello_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/internal/clienthello"
)

// protos returns the ALPN protocols of h as strings.
func protos(h *clienthello.Hello) []string {
	var out []string
	for p := range h.ALPN() {
		out = append(out, string(p))
	}
	return out
}

// agree checks Parse's verdict on b against crypto/tls's: the same server
// name and protocols when both accept, and otherwise only the differences
// the package documents.
func agree(t *testing.T, b []byte) (*clienthello.Hello, error) {
	t.Helper()
	var h clienthello.Hello
	err := clienthello.Parse(b, &h)
	want := oracle(b)
	switch {
	case err == nil && want == nil:
		t.Fatalf("Parse accepted a hello crypto/tls rejects: SNI %q ALPN %q", h.ServerName(), protos(&h))
	case err == nil:
		if string(h.ServerName()) != want.ServerName || !slices.Equal(protos(&h), want.SupportedProtos) {
			t.Fatalf("Parse read SNI %q ALPN %q, crypto/tls %q %q", h.ServerName(), protos(&h), want.ServerName, want.SupportedProtos)
		}
		if h.Len < 9 || h.Len > len(b) || h.NumALPN() != len(want.SupportedProtos) {
			t.Fatalf("Len %d of %d bytes, NumALPN %d", h.Len, len(b), h.NumALPN())
		}
	case want != nil:
		// Parse refused what crypto/tls accepts: only for documented reasons.
		alpnLen := 0
		for _, p := range want.SupportedProtos {
			alpnLen += 1 + len(p)
		}
		switch {
		case errors.Is(err, clienthello.ErrTooLarge):
			if len(want.ServerName) <= clienthello.MaxServerName && alpnLen <= clienthello.MaxALPN && len(b) <= clienthello.MaxLen {
				t.Fatalf("ErrTooLarge for SNI of %d bytes, ALPN of %d, %d bytes of records", len(want.ServerName), alpnLen, len(b))
			}
		case errors.Is(err, clienthello.ErrNotTLS), errors.Is(err, clienthello.ErrMalformed):
			if !recordQuirk(b) {
				t.Fatalf("Parse: %v; crypto/tls accepts SNI %q ALPN %q", err, want.ServerName, want.SupportedProtos)
			}
		default:
			t.Fatalf("Parse: %v; crypto/tls accepts SNI %q ALPN %q", err, want.ServerName, want.SupportedProtos)
		}
	}
	return &h, err
}

// recordQuirk reports whether the records that carry the handshake message
// at the start of b include one that crypto/tls tolerates and Parse does
// not: an empty record, a record of another type (a warning alert), a
// version other than 3.x.
func recordQuirk(b []byte) bool {
	var msg []byte
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:]))
		if b[0] != 22 || b[1] != 3 || n == 0 {
			return true
		}
		if len(b) < 5+n {
			return false
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
		if len(msg) >= 4 && len(msg) >= 4+int(msg[1])<<16|int(msg[2])<<8|int(msg[3]) {
			return false
		}
	}
	return false
}

func TestParse(t *testing.T) {
	base := capture(t, &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}})
	noSNI := capture(t, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true})
	name := func(s string) []byte {
		d := binary.BigEndian.AppendUint16(nil, uint16(3+len(s)))
		d = append(d, 0)
		d = binary.BigEndian.AppendUint16(d, uint16(len(s)))
		return ext(0, append(d, s...)...)
	}
	var many [][]byte
	for i := range 40 {
		many = append(many, ext(uint16(0x7000+i)))
	}
	longALPN := []string{}
	for i := range 40 {
		longALPN = append(longALPN, strings.Repeat(string(rune('a'+i%26)), 20))
	}
	emptyRecord := append([]byte{22, 3, 1, 0, 0}, base...)
	tests := []struct {
		name    string
		in      []byte
		sni     string
		alpn    []string
		wantErr error
	}{
		{"tls13 with sni and alpn", base, "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"no sni", noSNI, "", nil, nil},
		{"tls12 only", capture(t, &tls.Config{ServerName: "old.test", MaxVersion: tls.VersionTLS12}), "old.test", nil, nil},
		{"tls13 resumption, pre_shared_key", resumed(t, tls.VersionTLS13), "resume.test", nil, nil},
		{"tls12 resumption, session ticket", resumed(t, tls.VersionTLS12), "resume.test", nil, nil},
		{"records of 100 bytes", split(base, 100), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"records of 1 byte", split(base, 1), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"followed by data", append(slices.Clone(base), 23, 3, 3, 0, 1, 0), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"grease", withExtensions(t, base, ext(0x0a0a), ext(0xfafa, 0)), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"ech outer", withExtensions(t, base, ext(0xfe0d, 0, 0, 1, 0, 1, 7, 0, 2, 9, 9, 0, 1, 5)), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"40 extensions", withExtensions(t, base, many...), "www.example.test", []string{"h2", "http/1.1"}, nil},
		{"long alpn", capture(t, &tls.Config{ServerName: "a.test", NextProtos: longALPN[:20]}), "a.test", longALPN[:20], nil},

		{"trailing dot", withExtensions(t, noSNI, name("dot.test.")), "", nil, clienthello.ErrMalformed},
		{"two host names", withExtensions(t, noSNI, ext(0, 0, 10, 0, 0, 2, 'a', 'b', 0, 0, 2, 'c', 'd')), "", nil, clienthello.ErrMalformed},
		{"duplicate extension", withExtensions(t, base, ext(0x7777), ext(0x7777)), "", nil, clienthello.ErrMalformed},
		{"duplicate among 40", withExtensions(t, base, append(many, ext(0x7000))...), "", nil, clienthello.ErrMalformed},
		{"pre_shared_key not last", withExtensions(t, base, ext(41, 0, 7, 0, 1, 'x', 0, 0, 0, 0, 0, 2, 1, 0)), "", nil, clienthello.ErrMalformed},
		{"ech of unknown type", withExtensions(t, base, ext(0xfe0d, 2)), "", nil, clienthello.ErrMalformed},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, "", nil, clienthello.ErrMalformed},
		{"truncated", base[:len(base)-1], "", nil, clienthello.ErrShort},
		{"empty", nil, "", nil, clienthello.ErrShort},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", nil, clienthello.ErrNotTLS},
		{"sslv3 major version", append([]byte{22, 2}, base[2:]...), "", nil, clienthello.ErrNotTLS},
		// Accepted by crypto/tls, refused by Parse (see the package doc).
		{"long server name", withExtensions(t, noSNI, name(strings.Repeat("a", 300))), "", nil, clienthello.ErrTooLarge},
		{"alpn beyond MaxALPN", capture(t, &tls.Config{ServerName: "a.test", NextProtos: longALPN}), "", nil, clienthello.ErrTooLarge},
		{"empty record first", emptyRecord, "", nil, clienthello.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := agree(t, tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := string(h.ServerName()); got != tt.sni || !slices.Equal(protos(h), tt.alpn) {
				t.Errorf("SNI %q ALPN %q, want %q %q", got, protos(h), tt.sni, tt.alpn)
			}
			if want := len(tt.in); !strings.HasPrefix(tt.name, "followed") && h.Len != want {
				t.Errorf("Len %d, want %d", h.Len, want)
			}
		})
	}
}

// TestParseLargeKeyShare checks a hello with a post-quantum key share
// (X25519MLKEM768, about 1.2 KB), whole and split at every record size a
// client might choose, including splits inside the key share.
func TestParseLargeKeyShare(t *testing.T) {
	hello := capture(t, &tls.Config{ServerName: "pq.test", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}})
	if len(hello) < 1200 {
		t.Fatalf("hello of %d bytes: no post-quantum key share", len(hello))
	}
	for _, n := range []int{16384, 1024, 512, 333, 64, 7} {
		h, err := agree(t, split(hello, n))
		if err != nil || string(h.ServerName()) != "pq.test" {
			t.Errorf("records of %d bytes: %v, SNI %q", n, err, h.ServerName())
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	hellos := [][]byte{
		capture(t, &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}}),
		split(capture(t, &tls.Config{ServerName: "split.test"}), 50),
	}
	var h clienthello.Hello
	for _, b := range hellos {
		allocs := testing.AllocsPerRun(100, func() {
			if err := clienthello.Parse(b, &h); err != nil {
				t.Fatal(err)
			}
			for p := range h.ALPN() {
				if len(p) == 0 {
					t.Fatal("empty protocol")
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%d allocations per Parse", int(allocs))
		}
	}
}

func FuzzParse(f *testing.F) {
	base := capture(f, &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}})
	f.Add(base)
	f.Add(split(base, 100))
	f.Add(split(base, 3))
	f.Add(capture(f, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}))
	f.Add(capture(f, &tls.Config{ServerName: "old.test", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}))
	f.Add(resumed(f, tls.VersionTLS13))
	f.Add(resumed(f, tls.VersionTLS12))
	f.Add(withExtensions(f, base, ext(0x0a0a), ext(0xfafa, 0), ext(0xfe0d, 0, 0, 1, 0, 1, 7, 0, 2, 9, 9, 0, 1, 5)))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := agree(t, b)
		if err != nil || len(b) < 5 || 5+int(binary.BigEndian.Uint16(b[3:])) != h.Len {
			return
		}
		// A hello in one record reads the same split into records of any size.
		for _, n := range []int{1, 2 + len(b)%97} {
			var g clienthello.Hello
			if err := clienthello.Parse(split(b[:h.Len], n), &g); err != nil ||
				!bytes.Equal(g.ServerName(), h.ServerName()) || !slices.Equal(protos(&g), protos(h)) {
				t.Fatalf("records of %d bytes: %v, SNI %q ALPN %q; whole: SNI %q ALPN %q", n, err, g.ServerName(), protos(&g), h.ServerName(), protos(h))
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"tls13", &tls.Config{ServerName: "www.example.test", NextProtos: []string{"h2", "http/1.1"}}},
		{"tls12", &tls.Config{ServerName: "www.example.test", MaxVersion: tls.VersionTLS12}},
	} {
		hello := capture(b, tc.cfg)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(hello)))
			var h clienthello.Hello
			for b.Loop() {
				if err := clienthello.Parse(hello, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
