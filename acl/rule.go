package acl

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/lbkit/lbkit/lb"
)

// Sentinel errors. Compile wraps ErrInvalidRule with the index and name of
// the rule at fault.
var (
	// ErrInvalidRule reports a rule that Compile rejects.
	ErrInvalidRule = errors.New("acl: invalid rule")
	// ErrBadHost reports a Host header that cannot be placed in a redirect.
	ErrBadHost = errors.New("acl: invalid host for redirect")
)

// Action is what a matching rule does with the connection or request.
type Action uint8

const (
	// Allow lets the connection or request through, skipping later rules.
	Allow Action = iota
	// Deny answers HTTP requests with 403 Forbidden and closes TCP
	// connections.
	Deny
	// RedirectTo answers HTTP requests with a redirect (see Redirect). It
	// needs HTTP: the L4 layers never apply it.
	RedirectTo
)

// String returns "allow", "deny" or "redirect".
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case RedirectTo:
		return "redirect"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Rule is one access-control rule: a set of filters and an action. A rule
// matches when every filter it sets matches (the filters are AND-ed, IP and
// HTTP alike), and a filter with several values matches when any of them
// does (they are OR-ed). A rule without filters matches everything, which
// makes a final catch-all rule. Invert negates the whole match.
//
// Matching is exact and strict: paths are compared case-sensitively after
// decoding and cleaning ("/a/../admin" is "/admin"; "/%61dmin" is "/admin"),
// header values are compared exactly, host names case-insensitively.
type Rule struct {
	// Name identifies the rule in logs and statistics; empty means its
	// index.
	Name string

	// IPs matches the client address against a list of prefixes, IPv4 and
	// IPv6 alike; IPv4-mapped IPv6 client addresses match IPv4 prefixes.
	// The client address is lb.ConnInfo.Remote or http.Request.RemoteAddr,
	// which carry the address of a PROXY header when the frontend accepts
	// them.
	IPs []netip.Prefix

	// PathPrefix matches HTTP requests whose path (without the query)
	// begins with one of the values.
	PathPrefix []string
	// PathSuffix matches HTTP requests whose path ends with one of the
	// values.
	PathSuffix []string
	// PathRegexp, when not empty, matches HTTP requests whose path matches
	// the regular expression (RE2 syntax, unanchored unless it says so).
	PathRegexp string

	// Header, when not empty, names a request header (case-insensitively)
	// that must have one of HeaderValues, compared exactly; with no
	// HeaderValues, the header must be present.
	Header       string
	HeaderValues []string

	// Host matches HTTP requests by the host name of their Host header
	// (without port): "example.com" matches that name, "*.example.com"
	// any name below it at any depth. Case-insensitive.
	Host []string

	// SNI matches the server name of the TLS ClientHello, with the same
	// patterns as Host. At L4 it needs a tlsmode adapter that peeked the
	// handshake (lb.ConnInfo.SNI); over HTTP it is the name of the
	// terminated TLS session. A connection without SNI matches no pattern.
	SNI []string

	// Invert negates the match of the whole rule.
	Invert bool

	// Action is what happens when the rule matches; the zero value is
	// Allow.
	Action Action

	// Redirect configures the answer of a RedirectTo rule; it must be the
	// zero value for other actions.
	Redirect Redirect
}

// layer bits: what a rule needs to be evaluated.
const (
	needIP = 1 << iota
	needSNI
	needHTTP
)

// compiled is a validated rule, ready to evaluate.
type compiled struct {
	name       string
	ips        []netip.Prefix
	prefix     []string
	suffix     []string
	re         *regexp.Regexp
	header     string // canonical key, "" for none
	values     []string
	hosts      []hostPattern
	sni        []hostPattern
	invert     bool
	action     Action
	redirect   *template
	code       int
	needs      int
	ipOnly     bool // needs only the client IP
	httpFilter bool // has a filter only HTTP can evaluate
}

// Rules is a compiled, immutable list of rules, evaluated in index order:
// the first rule that matches decides; when none matches, traffic is
// allowed. Build it with Compile; it is safe for concurrent use, and
// evaluating IP, path prefix and suffix, header, Host and SNI filters does
// not allocate.
//
// A nil or zero Rules has no rule and allows everything.
//
// Every decision taken by a rule is counted (see Stats); every denial and
// redirect is logged at Debug level with the rule's index and name.
type Rules struct {
	// Logger receives a Debug record for each denial and redirect; nil
	// means slog.Default(). Set it before the Rules are used.
	Logger *slog.Logger

	rules []compiled
	hits  []atomic.Uint64
}

// Compile validates rules and compiles them for evaluation. It rejects
// invalid prefixes, empty values, bad regular expressions, host patterns
// that are not host names, redirect settings on rules that do not redirect,
// and redirect templates it cannot make safe (see Redirect). The rules are
// copied: later changes to the slice have no effect.
func Compile(rules ...Rule) (*Rules, error) {
	rs := &Rules{rules: make([]compiled, len(rules)), hits: make([]atomic.Uint64, len(rules))}
	for i, r := range rules {
		c, err := compile(r)
		if err != nil {
			name := r.Name
			if name == "" {
				name = fmt.Sprint(i)
			}
			return nil, fmt.Errorf("%w %d (%s): %w", ErrInvalidRule, i, name, err)
		}
		if c.name == "" {
			c.name = fmt.Sprint(i)
		}
		rs.rules[i] = c
	}
	return rs, nil
}

// MustCompile is Compile that panics on error, for rules fixed in code.
func MustCompile(rules ...Rule) *Rules {
	rs, err := Compile(rules...)
	if err != nil {
		panic(err)
	}
	return rs
}

func compile(r Rule) (compiled, error) {
	c := compiled{name: r.Name, invert: r.Invert, action: r.Action}
	for _, p := range r.IPs {
		if !p.IsValid() {
			return c, errors.New("invalid IP prefix")
		}
		c.ips = append(c.ips, p.Masked())
	}
	if len(c.ips) > 0 {
		c.needs |= needIP
	}
	for _, p := range r.PathPrefix {
		if p == "" {
			return c, errors.New("empty path prefix")
		}
	}
	for _, p := range r.PathSuffix {
		if p == "" {
			return c, errors.New("empty path suffix")
		}
	}
	c.prefix = append([]string(nil), r.PathPrefix...)
	c.suffix = append([]string(nil), r.PathSuffix...)
	if r.PathRegexp != "" {
		re, err := regexp.Compile(r.PathRegexp)
		if err != nil {
			return c, fmt.Errorf("path regexp: %w", err)
		}
		c.re = re
	}
	if r.Header != "" {
		if !validHeaderName(r.Header) {
			return c, fmt.Errorf("invalid header name %q", r.Header)
		}
		c.header = textproto.CanonicalMIMEHeaderKey(r.Header)
		c.values = append([]string(nil), r.HeaderValues...)
	} else if len(r.HeaderValues) > 0 {
		return c, errors.New("header values without a header name")
	}
	var err error
	if c.hosts, err = hostPatterns(r.Host); err != nil {
		return c, err
	}
	if c.sni, err = hostPatterns(r.SNI); err != nil {
		return c, err
	}
	if len(c.sni) > 0 {
		c.needs |= needSNI
	}
	c.httpFilter = len(c.prefix) > 0 || len(c.suffix) > 0 || c.re != nil || c.header != "" || len(c.hosts) > 0
	if c.httpFilter {
		c.needs |= needHTTP
	}
	c.ipOnly = c.needs&^needIP == 0

	switch r.Action {
	case Allow, Deny:
		if r.Redirect != (Redirect{}) {
			return c, fmt.Errorf("redirect settings on a %s rule", r.Action)
		}
	case RedirectTo:
		if c.redirect, c.code, err = r.Redirect.compile(); err != nil {
			return c, err
		}
	default:
		return c, fmt.Errorf("unknown action %d", r.Action)
	}
	return c, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", b) >= 0 {
			return false
		}
	}
	return true
}

// Len returns the number of rules.
func (rs *Rules) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.rules)
}

// RuleStat is the activity of one rule.
type RuleStat struct {
	// Index is the rule's position; Name its name (its index when unnamed).
	Index int
	Name  string
	// Action is the rule's action.
	Action Action
	// Hits counts the decisions the rule took, once per layer: a
	// connection that Listener let in by an allow rule and whose requests
	// FilterHTTP let in by the same rule counts at both. A denied
	// connection counts once, as it goes no further.
	Hits uint64
}

// Stats returns the activity of every rule, in index order.
func (rs *Rules) Stats() []RuleStat {
	if rs == nil {
		return nil
	}
	st := make([]RuleStat, len(rs.rules))
	for i := range rs.rules {
		st[i] = RuleStat{Index: i, Name: rs.rules[i].name, Action: rs.rules[i].action, Hits: rs.hits[i].Load()}
	}
	return st
}

// Rejected returns how many connections and requests the rules denied or
// redirected.
func (rs *Rules) Rejected() uint64 {
	var n uint64
	if rs == nil {
		return 0
	}
	for i := range rs.rules {
		if rs.rules[i].action != Allow {
			n += rs.hits[i].Load()
		}
	}
	return n
}

func (rs *Rules) logger() *slog.Logger {
	if rs.Logger != nil {
		return rs.Logger
	}
	return slog.Default()
}

// Decision is the outcome of evaluating the rules.
type Decision struct {
	// Rule is the index of the rule that decided, or -1 when none matched
	// (the default: allow) or the layer could not decide.
	Rule int
	// Action is what to do; Allow when no rule decided.
	Action Action
}

// tri-state match result.
type tri uint8

const (
	no tri = iota
	yes
	unknown
)

// input is what a layer knows of the client.
type input struct {
	have int // needIP|needSNI|needHTTP bits
	addr netip.Addr
	sni  string
	req  *http.Request
	path string // cleaned request path
}

// match evaluates the rule on in; filters the layer cannot see are unknown.
func (c *compiled) match(in *input) tri {
	res := yes
	// set is called per filter with its result; known failures decide.
	if len(c.ips) > 0 {
		if in.have&needIP == 0 {
			res = unknown
		} else if !matchIP(c.ips, in.addr) {
			return c.flip(no)
		}
	}
	if len(c.sni) > 0 {
		if in.have&needSNI == 0 {
			res = unknown
		} else if !matchHosts(c.sni, in.sni) {
			return c.flip(no)
		}
	}
	if c.httpFilter {
		if in.have&needHTTP == 0 {
			res = unknown
		} else if !c.matchHTTP(in) {
			return c.flip(no)
		}
	}
	return c.flip(res)
}

func (c *compiled) flip(t tri) tri {
	if !c.invert || t == unknown {
		return t
	}
	if t == yes {
		return no
	}
	return yes
}

func (c *compiled) matchHTTP(in *input) bool {
	p := in.path
	if len(c.prefix) > 0 && !anyPrefix(c.prefix, p) {
		return false
	}
	if len(c.suffix) > 0 && !anySuffix(c.suffix, p) {
		return false
	}
	if c.re != nil && !c.re.MatchString(p) {
		return false
	}
	if c.header != "" && !matchHeader(in.req.Header[c.header], c.values) {
		return false
	}
	if len(c.hosts) > 0 && !matchHosts(c.hosts, hostName(in.req.Host)) {
		return false
	}
	return true
}

func matchIP(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("") // netip.Prefix.Contains refuses zoned addresses
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func anyPrefix(ps []string, s string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func anySuffix(ps []string, s string) bool {
	for _, p := range ps {
		if strings.HasSuffix(s, p) {
			return true
		}
	}
	return false
}

// matchHeader reports whether any of the request's values for the header is
// one of want; with no want, whether the header is present.
func matchHeader(got, want []string) bool {
	if len(want) == 0 {
		return len(got) > 0
	}
	for _, g := range got {
		for _, w := range want {
			if g == w {
				return true
			}
		}
	}
	return false
}

// eval walks the rules for a layer. With stopOnUnknown, the first rule the
// layer cannot evaluate ends the walk undecided (ok false); otherwise such
// rules are skipped. Rules whose action the layer cannot carry out (skip)
// are treated likewise.
func (rs *Rules) eval(in *input, stopOnUnknown bool, noRedirect bool) (d Decision, ok bool) {
	if rs == nil {
		return Decision{Rule: -1}, true
	}
	for i := range rs.rules {
		c := &rs.rules[i]
		m := c.match(in)
		if m == yes && noRedirect && c.action == RedirectTo {
			m = unknown
		}
		switch m {
		case no:
			continue
		case unknown:
			if stopOnUnknown {
				return Decision{Rule: -1}, false
			}
			continue
		}
		rs.hits[i].Add(1)
		return Decision{Rule: i, Action: c.action}, true
	}
	return Decision{Rule: -1}, true
}

// CheckAddr evaluates the rules knowing only the client address, as
// Listener does. It decides (ok true) only when the outcome cannot depend on
// anything else: it stops undecided at the first rule that needs SNI or
// HTTP to know whether it matches, and at a matching redirect rule, so that
// a later layer evaluating the same rules reaches the same decision. It
// counts the decision but does not log.
func (rs *Rules) CheckAddr(addr netip.Addr) (d Decision, ok bool) {
	in := input{have: needIP, addr: addr}
	return rs.eval(&in, true, true)
}

// CheckConn evaluates the rules for an L4 connection, as Filter does: only
// rules without HTTP filters and without a redirect action apply; the others
// are skipped. It counts the decision but does not log.
func (rs *Rules) CheckConn(info *lb.ConnInfo) Decision {
	in := input{have: needIP | needSNI, addr: info.Remote.Addr(), sni: info.SNI}
	d, _ := rs.eval(&in, false, true)
	return d
}

// CheckRequest evaluates every rule for an HTTP request, as FilterHTTP
// does. The client address is parsed from r.RemoteAddr; the SNI is that of
// r.TLS, if any. It counts the decision but does not log.
func (rs *Rules) CheckRequest(r *http.Request) Decision {
	in := requestInput(r)
	d, _ := rs.eval(&in, false, false)
	return d
}

func requestInput(r *http.Request) input {
	in := input{have: needIP | needSNI | needHTTP, req: r, path: cleanPath(r.URL.Path)}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		in.addr = ap.Addr()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		in.addr = a
	}
	if r.TLS != nil {
		in.sni = r.TLS.ServerName
	}
	return in
}

// name returns the name of rule i, for logs.
func (rs *Rules) name(i int) string { return rs.rules[i].name }
