// Package ipkey turns client addresses into the fixed-size keys of the
// per-client tables (sticky.SourceIP, sticky/redistable), masked to a
// network prefix so that a network counts as one client.
package ipkey

import "net/netip"

// Key is a client's masked address in 16-byte form (IPv4 as IPv4-mapped).
type Key = [16]byte

// Of returns the key of a: unmapped, without zone, masked to v4Prefix
// bits for IPv4 (1 to 31; any other value keeps the whole address) and
// v6Prefix bits for IPv6 (1 to 127, likewise). It reports false for an
// invalid address.
func Of(a netip.Addr, v4Prefix, v6Prefix int) (Key, bool) {
	if !a.IsValid() {
		return Key{}, false
	}
	a = a.Unmap().WithZone("")
	n := 0
	if a.Is4() {
		if v4Prefix > 0 && v4Prefix < 32 {
			n = v4Prefix
		}
	} else if v6Prefix > 0 && v6Prefix < 128 {
		n = v6Prefix
	}
	if n > 0 {
		if p, err := a.Prefix(n); err == nil {
			a = p.Addr()
		}
	}
	return a.As16(), true
}
