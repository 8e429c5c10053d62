package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lbkit/lbkit/acl"
)

// aclRules builds the ACL of -allow and -deny, or nil when both are empty:
// -deny lists networks refused, -allow the only networks let in. -deny
// takes precedence: a client in both lists is refused. run applies the
// rules at accept, before any TLS work, and again in the frontend's chain
// (FilterHTTP for the HTTP modes, Filter for the TCP ones). Both see the
// client address a PROXY header carries when the frontend accepts them,
// since the PROXY listener is wrapped first.
func aclRules(allow, deny string) (*acl.Rules, error) {
	denied, err := parsePrefixes(deny)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -deny: %w", err)
	}
	allowed, err := parsePrefixes(allow)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -allow: %w", err)
	}
	var rules []acl.Rule
	if len(denied) > 0 {
		rules = append(rules, acl.Rule{Name: "deny", IPs: denied, Action: acl.Deny})
	}
	if len(allowed) > 0 {
		rules = append(rules, acl.Rule{Name: "allow", IPs: allowed, Invert: true, Action: acl.Deny})
	}
	if len(rules) == 0 {
		return nil, nil
	}
	return acl.Compile(rules...)
}

// parsePrefixes parses a comma-separated list of networks in CIDR notation
// ("10.0.0.0/8,2001:db8::/32"); a bare address stands for itself alone (a
// /32 or /128). IPv4-mapped IPv6 addresses and networks (/96 and longer)
// are unmapped, as client addresses are before they are matched. An empty
// list gives nil.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
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
		} else if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// An IPv4-mapped network is the IPv4 network it maps: client
			// addresses are unmapped before they are matched.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, nil
}
