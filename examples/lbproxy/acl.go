package main

import (
	"flag"
	"fmt"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/internal/demo"
)

func init() { newFeatures = append(newFeatures, func() feature { return &aclFeature{} }) }

// aclFeature filters clients by address: -deny lists networks refused,
// -allow the only networks let in. -deny takes precedence: a client in both
// lists is refused. Refused connections are closed at accept, before any
// TLS work, and again checked by the frontend's chain (FilterHTTP for the
// HTTP modes, Filter for the TCP ones), which sees the client address a
// PROXY header carries when the frontend accepts them.
//
// The accept-time check reads the connection's peer address, so a listener
// that reads PROXY headers must be wrapped by it, not around it: such a
// feature ranks below zero (see ranked) and so applies before this one.
type aclFeature struct {
	allow, deny string
}

func (f *aclFeature) register(fs *flag.FlagSet) {
	fs.StringVar(&f.allow, "allow", "", "comma-separated client networks (CIDR) let in; others are refused (empty: all)")
	fs.StringVar(&f.deny, "deny", "", "comma-separated client networks (CIDR) refused; checked before -allow")
}

// rules builds the ACL of the flags, or nil when both are empty.
func (f *aclFeature) rules() (*acl.Rules, error) {
	deny, err := demo.Prefixes(f.deny)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -deny: %w", err)
	}
	allow, err := demo.Prefixes(f.allow)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -allow: %w", err)
	}
	var rules []acl.Rule
	if len(deny) > 0 {
		rules = append(rules, acl.Rule{Name: "deny", IPs: deny, Action: acl.Deny})
	}
	if len(allow) > 0 {
		rules = append(rules, acl.Rule{Name: "allow", IPs: allow, Invert: true, Action: acl.Deny})
	}
	if len(rules) == 0 {
		return nil, nil
	}
	return acl.Compile(rules...)
}

func (f *aclFeature) apply(s *stack) error {
	rules, err := f.rules()
	if err != nil || rules == nil {
		return err
	}
	rules.Logger = s.logger
	s.ln = acl.Listener(rules, s.ln)
	if s.kind == "tcp" {
		s.backend = acl.Filter(rules, s.backend)
	} else {
		s.handler = acl.FilterHTTP(rules, s.handler)
	}
	return nil
}
