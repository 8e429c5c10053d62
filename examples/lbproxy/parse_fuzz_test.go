package main

import (
	"net"
	"strings"
	"testing"
)

// FuzzParseServers checks that every server parseServers returns has a
// host:port address free of surrounding space and commas, a unique name,
// and the connection limit asked for.
func FuzzParseServers(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:8080", "a:1, b:2 ,,c:3", "[::1]:80,[fe80::1%eth0]:443", "", ",", "host", "a:1,b", "[::1]", ":0",
	} {
		f.Add(s, 0)
	}
	f.Add("a:1", 10)
	f.Fuzz(func(t *testing.T, list string, maxConns int) {
		servers, err := parseServers(list, maxConns)
		if err != nil {
			if servers != nil {
				t.Fatalf("parseServers(%q) returned servers and %v", list, err)
			}
			return
		}
		if len(servers) == 0 {
			t.Fatalf("parseServers(%q) returned no server and no error", list)
		}
		names := map[string]bool{}
		for _, s := range servers {
			if _, _, err := net.SplitHostPort(s.Addr); err != nil {
				t.Fatalf("%q: server %q has address %q: %v", list, s.Name, s.Addr, err)
			}
			if s.Addr != strings.TrimSpace(s.Addr) || strings.Contains(s.Addr, ",") {
				t.Fatalf("%q: address %q is not one trimmed entry", list, s.Addr)
			}
			if names[s.Name] {
				t.Fatalf("%q: name %q used twice", list, s.Name)
			}
			names[s.Name] = true
			if s.MaxConns != maxConns {
				t.Fatalf("%q: MaxConns %d, want %d", list, s.MaxConns, maxConns)
			}
		}
	})
}

// FuzzParsePrefixes checks that parsePrefixes returns only valid
// prefixes, one per non-empty entry, and that a bare address stands for
// itself alone, unmapped.
func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8,2001:db8::/32", "192.0.2.1", "::ffff:192.0.2.1", " 10.0.0.1 , ,fe80::1", "", "10.0.0.0/33",
		"10.0.0.1/8", "fe80::1%eth0", "1.2.3", "::ffff:10.0.0.0/104",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		prefixes, err := parsePrefixes(list)
		if err != nil {
			if prefixes != nil {
				t.Fatalf("parsePrefixes(%q) returned prefixes and %v", list, err)
			}
			return
		}
		var entries []string
		for _, s := range strings.Split(list, ",") {
			if s = strings.TrimSpace(s); s != "" {
				entries = append(entries, s)
			}
		}
		if len(prefixes) != len(entries) {
			t.Fatalf("parsePrefixes(%q) = %v for %d entries", list, prefixes, len(entries))
		}
		for i, p := range prefixes {
			if !p.IsValid() {
				t.Fatalf("%q: entry %q gave invalid prefix %v", list, entries[i], p)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				t.Fatalf("%q: entry %q gave the IPv4-mapped %v, which no unmapped client matches", list, entries[i], p)
			}
			if !strings.Contains(entries[i], "/") {
				if p.Bits() != p.Addr().BitLen() || p.Addr().Is4In6() {
					t.Fatalf("%q: bare address %q gave %v", list, entries[i], p)
				}
			}
		}
	})
}

// TestParsePrefixesUnmaps: IPv4-mapped addresses and networks become the
// IPv4 ones they map, which unmapped client addresses match.
func TestParsePrefixesUnmaps(t *testing.T) {
	got, err := parsePrefixes("::ffff:192.0.2.1, ::ffff:10.0.0.0/104, ::ffff:0:0/80, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1/32", "10.0.0.0/8", "::ffff:0.0.0.0/80", "2001:db8::/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %v, want %s", i, got[i], want[i])
		}
	}
}
