package demo

import (
	"fmt"
	"net/netip"
	"strings"
)

// Prefixes parses a comma-separated list of networks in CIDR notation
// ("10.0.0.0/8,2001:db8::/32"); a bare address stands for itself alone
// (a /32 or /128). IPv4-mapped IPv6 addresses are unmapped. An empty list
// gives nil.
func Prefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("network %q: %w", s, err)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}
