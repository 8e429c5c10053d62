package config

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/internal/hostname"
	"github.com/lbkit/lbkit/lb"
)

// FieldError is one field of one resource that does not validate.
type FieldError struct {
	// Resource is the kind of resource ("lb", "backend", "frontend", "acl",
	// "route", "certificate", "subscriber", "secrets") and ID its id.
	Resource, ID string
	// Field is the field's JSON name, dotted into nested objects
	// ("health_check.check_max_retries").
	Field string
	// Reason is the API's short reason: "required", "constraint",
	// "unknown" (a reference to a resource that does not exist) or
	// "conflict".
	Reason string
	// Help says what is expected.
	Help string
}

func (e *FieldError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("%s.%s: %s", e.Resource, e.Field, e.Help)
	}
	return fmt.Sprintf("%s %q: %s: %s", e.Resource, e.ID, e.Field, e.Help)
}

// ValidationError lists every field of a document that does not validate.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

type checker struct {
	errs     []*FieldError
	kind, id string
}

func (c *checker) at(kind, id string) { c.kind, c.id = kind, id }

func (c *checker) fail(field, reason, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Resource: c.kind, ID: c.id, Field: field, Reason: reason, Help: fmt.Sprintf(format, args...)})
}

func (c *checker) port(field string, p int32, zeroOK bool) {
	if (p == 0 && zeroOK) || (p >= 1 && p <= 65535) {
		return
	}
	c.fail(field, "constraint", "must be a port from 1 to 65535, got %d", p)
}

func (c *checker) enum(field string, ok bool, v any) {
	if !ok {
		c.fail(field, "constraint", "unknown value %q", v)
	}
}

var validMethods = []string{"GET", "POST", "PUT", "HEAD", "OPTIONS", "PATCH", "DELETE"}

// Validate checks d as a whole: every field's type and range, every
// reference between resources, and every combination the data path
// cannot serve. It returns nil or a *ValidationError naming each field.
// Validate does not change d; run it on a document with defaults applied
// or not, the result is the same.
func (d *Document) Validate() error {
	c := &checker{}
	c.at("lb", d.LB.ID)
	c.enum("ssl_compatibility_level", d.LB.SSLCompatibilityLevel.Valid(), d.LB.SSLCompatibilityLevel)

	backends := map[string]*Backend{}
	for i := range d.Backends {
		b := &d.Backends[i]
		c.at("backend", b.ID)
		if uniqueID(c, b.ID, backends) {
			backends[b.ID] = b
		}
		d.validateBackend(c, b)
	}
	certs := map[string]*Certificate{}
	for i := range d.Certificates {
		crt := &d.Certificates[i]
		c.at("certificate", crt.ID)
		if uniqueID(c, crt.ID, certs) {
			certs[crt.ID] = crt
		}
		validateCertificate(c, crt)
	}
	frontends := map[string]*Frontend{}
	ports := map[int32]string{}
	for i := range d.Frontends {
		f := &d.Frontends[i]
		c.at("frontend", f.ID)
		if uniqueID(c, f.ID, frontends) {
			frontends[f.ID] = f
		}
		c.port("inbound_port", f.InboundPort, false)
		if other, dup := ports[f.InboundPort]; dup && f.InboundPort != 0 {
			c.fail("inbound_port", "conflict", "port %d is already used by frontend %q", f.InboundPort, other)
		}
		ports[f.InboundPort] = f.ID
		b, ok := backends[f.BackendID]
		if !ok {
			c.fail("backend_id", "unknown", "no backend %q", f.BackendID)
		}
		seen := map[string]bool{}
		for _, id := range f.CertificateIDs {
			if certs[id] == nil {
				c.fail("certificate_ids", "unknown", "no certificate %q", id)
			}
			if seen[id] {
				c.fail("certificate_ids", "constraint", "certificate %q is listed twice", id)
			}
			seen[id] = true
		}
		if f.EnableHTTP3 {
			if len(f.CertificateIDs) == 0 {
				c.fail("enable_http3", "constraint", "HTTP/3 needs a certificate on the frontend")
			}
			if ok && b.ForwardProtocol != ProtocolHTTP {
				c.fail("enable_http3", "constraint", "HTTP/3 needs an http backend")
			}
		}
		if x := f.Lbkit; x != nil {
			if x.MaxConnections < 0 || x.ClientMaxConnections < 0 || x.ClientBurst < 0 || x.ClientRate < 0 {
				c.fail("lbkit", "constraint", "limits must not be negative")
			}
		}
	}
	httpFrontend := func(f *Frontend) bool {
		b := backends[f.BackendID]
		return b != nil && b.ForwardProtocol == ProtocolHTTP
	}
	indexes := map[string]map[int32]bool{}
	aclIDs := map[string]*ACL{}
	for i := range d.ACLs {
		a := &d.ACLs[i]
		c.at("acl", a.ID)
		if uniqueID(c, a.ID, aclIDs) {
			aclIDs[a.ID] = a
		}
		f := frontends[a.FrontendID]
		if f == nil {
			c.fail("frontend_id", "unknown", "no frontend %q", a.FrontendID)
		}
		if a.Index < 0 {
			c.fail("index", "constraint", "must not be negative")
		}
		if indexes[a.FrontendID] == nil {
			indexes[a.FrontendID] = map[int32]bool{}
		}
		if indexes[a.FrontendID][a.Index] {
			c.fail("index", "conflict", "index %d is already used on frontend %q", a.Index, a.FrontendID)
		}
		indexes[a.FrontendID][a.Index] = true
		before := len(c.errs)
		validateACL(c, a, f != nil && httpFrontend(f))
		if len(c.errs) == before {
			compileACL(c, a)
		}
	}
	routeIDs := map[string]*Route{}
	for i := range d.Routes {
		r := &d.Routes[i]
		c.at("route", r.ID)
		if uniqueID(c, r.ID, routeIDs) {
			routeIDs[r.ID] = r
		}
		f, b := frontends[r.FrontendID], backends[r.BackendID]
		if f == nil {
			c.fail("frontend_id", "unknown", "no frontend %q", r.FrontendID)
		}
		if b == nil {
			c.fail("backend_id", "unknown", "no backend %q", r.BackendID)
		}
		m := r.Match
		if m == nil {
			m = &RouteMatch{}
		}
		n := 0
		for _, set := range []bool{m.SNI != nil, m.HostHeader != nil, m.PathBegin != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			c.fail("match", "constraint", "set exactly one of sni, host_header and path_begin")
			continue
		}
		if f == nil || b == nil {
			continue
		}
		switch {
		case m.SNI != nil:
			if b.ForwardProtocol != ProtocolTCP || httpFrontend(f) {
				c.fail("match.sni", "constraint", "SNI routes need a tcp frontend and a tcp backend")
			}
			validHostPattern(c, "match.sni", *m.SNI)
		case m.HostHeader != nil:
			if b.ForwardProtocol != ProtocolHTTP || !httpFrontend(f) {
				c.fail("match.host_header", "constraint", "Host routes need an http frontend and an http backend")
			}
			validHostPattern(c, "match.host_header", *m.HostHeader)
		case m.PathBegin != nil:
			if b.ForwardProtocol != ProtocolHTTP || !httpFrontend(f) {
				c.fail("match.path_begin", "constraint", "path routes need an http frontend and an http backend")
			}
			if !strings.HasPrefix(*m.PathBegin, "/") {
				c.fail("match.path_begin", "constraint", "must begin with /")
			}
		}
	}
	validateRouteSet(c, d.Routes)
	subs := map[string]*Subscriber{}
	for i := range d.Subscribers {
		s := &d.Subscribers[i]
		c.at("subscriber", s.ID)
		if uniqueID(c, s.ID, subs) {
			subs[s.ID] = s
		}
		switch {
		case (s.EmailConfig == nil) == (s.WebhookConfig == nil):
			c.fail("webhook_config", "constraint", "set exactly one of email_config and webhook_config")
		case s.WebhookConfig != nil:
			u, err := url.Parse(s.WebhookConfig.URI)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.fail("webhook_config.uri", "constraint", "must be an absolute http or https URL")
			}
		case s.EmailConfig != nil:
			if !strings.Contains(s.EmailConfig.Email, "@") {
				c.fail("email_config.email", "constraint", "must be an email address")
			}
		}
	}
	if id := d.LB.SubscriberID; id != "" && subs[id] == nil {
		c.at("lb", d.LB.ID)
		c.fail("subscriber_id", "unknown", "no subscriber %q", id)
	}
	if s := d.Secrets.StickyCookieSecret; s != "" && len(s) < 16 {
		c.at("secrets", "")
		c.fail("sticky_cookie_secret", "constraint", "must be at least 16 bytes")
	}
	if s := d.Secrets.SessionTicketSecret; s != "" && len(s) < 16 {
		c.at("secrets", "")
		c.fail("session_ticket_secret", "constraint", "must be at least 16 bytes")
	}
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: c.errs}
}

func uniqueID[T any](c *checker, id string, seen map[string]*T) bool {
	if id == "" {
		c.fail("id", "required", "every resource needs an id")
		return false
	}
	if seen[id] != nil {
		c.fail("id", "conflict", "id %q is used twice", id)
		return false
	}
	return true
}

func (d *Document) validateBackend(c *checker, b *Backend) {
	c.enum("forward_protocol", b.ForwardProtocol.Valid(), b.ForwardProtocol)
	c.enum("forward_port_algorithm", b.ForwardPortAlgorithm.Valid(), b.ForwardPortAlgorithm)
	c.enum("sticky_sessions", b.StickySessions.Valid(), b.StickySessions)
	c.enum("proxy_protocol", b.ProxyProtocol.Valid(), b.ProxyProtocol)
	c.enum("on_marked_down_action", b.OnMarkedDownAction.Valid(), b.OnMarkedDownAction)
	c.port("forward_port", b.ForwardPort, false)
	http := b.ForwardProtocol == ProtocolHTTP
	if b.StickySessions == StickyCookie {
		if !http {
			c.fail("sticky_sessions", "constraint", "cookie stickiness needs forward_protocol http")
		}
		if !validToken(b.StickySessionsCookieName) {
			c.fail("sticky_sessions_cookie_name", "required", "cookie stickiness needs a cookie name (an HTTP token)")
		}
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range b.Pool {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			c.fail("pool", "constraint", "%q is not an IP address", ip)
			continue
		}
		if seen[a.Unmap()] {
			c.fail("pool", "conflict", "%s is listed twice", ip)
		}
		seen[a.Unmap()] = true
	}
	if v := b.MaxRetries; v != nil && (*v < 0 || *v > 32) {
		c.fail("max_retries", "constraint", "must be from 0 to 32")
	}
	if v := b.MaxConnections; v != nil && *v < 1 {
		c.fail("max_connections", "constraint", "must be at least 1 (unset for no limit)")
	}
	if v := b.RedispatchAttemptCount; v != nil && *v < 0 {
		c.fail("redispatch_attempt_count", "constraint", "must not be negative")
	}
	if v := b.TimeoutConnect; v != nil && *v == 0 {
		c.fail("timeout_connect", "constraint", "must be at least 1 ms")
	}
	if v := b.TimeoutQueue; v != nil && *v < 0 {
		c.fail("timeout_queue", "constraint", "must not be negative")
	}
	if h := b.FailoverHost; h != nil {
		if !http {
			c.fail("failover_host", "constraint", "a failover host needs forward_protocol http")
		}
		if *h == "" || strings.ContainsAny(*h, " \t\r\n") {
			c.fail("failover_host", "constraint", "must be a host name, host:port or http(s) URL")
		}
	}
	if h := b.Host; h != nil && (*h == "" || strings.ContainsAny(*h, " \t\r\n/@?#")) {
		c.fail("host", "constraint", "must be a host name")
	}
	if hc := b.HealthCheck; hc != nil {
		validateHealthCheck(c, hc, b)
	}
	if x := b.Lbkit; x != nil {
		named := map[string]bool{}
		for _, s := range x.Servers {
			a, err := netip.ParseAddr(s.IP)
			if err != nil || !seen[a.Unmap()] {
				c.fail("lbkit.servers", "unknown", "%q is not a server of the pool", s.IP)
			}
			if named[s.IP] {
				c.fail("lbkit.servers", "conflict", "%s is listed twice", s.IP)
			}
			named[s.IP] = true
			if s.Weight != nil && (*s.Weight < 0 || *s.Weight > 256) {
				c.fail("lbkit.servers.weight", "constraint", "must be from 0 to 256")
			}
			c.enum("lbkit.servers.admin_state", s.AdminState.Valid(), s.AdminState)
		}
		if d := x.DNS; d != nil {
			validateDNS(c, d, b)
		}
	}
}

// MinDNSInterval is the shortest lbkit.dns.interval accepted.
const MinDNSInterval = 100 * time.Millisecond

func validateDNS(c *checker, d *DNSServers, b *Backend) {
	if len(b.Pool) > 0 {
		c.fail("lbkit.dns", "conflict", "servers come from the pool or from DNS: leave pool empty")
	}
	if d.Name == "" || len(d.Name) > 253 || strings.ContainsAny(d.Name, " \t\r\n/@?#:") {
		c.fail("lbkit.dns.name", "required", "must be a DNS name")
	}
	if d.Server != "" {
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			c.fail("lbkit.dns.server", "constraint", "must be host:port")
		}
	}
	if v := d.Interval; v != nil && v.D() < MinDNSInterval {
		c.fail("lbkit.dns.interval", "constraint", "must be at least 100 ms (unset for 30000)")
	}
	c.port("lbkit.dns.port", d.Port, true)
	if d.SRV && d.Port != 0 {
		c.fail("lbkit.dns.port", "conflict", "SRV records carry their ports: leave port unset")
	}
}

func validateHealthCheck(c *checker, hc *HealthCheck, b *Backend) {
	c.port("health_check.port", hc.Port, true)
	if hc.checkKinds() > 1 {
		c.fail("health_check", "constraint", "set at most one of tcp_config, http_config, https_config, mysql_config, pgsql_config, ldap_config and redis_config")
	}
	if n := hc.CheckMaxRetries; n < 0 || n > 9999 {
		c.fail("health_check.check_max_retries", "constraint", "must be from 1 to 9999")
	}
	if v := hc.CheckDelay; v != nil && v.D() < 1e6 {
		c.fail("health_check.check_delay", "constraint", "must be at least 1 ms")
	}
	if v := hc.CheckTimeout; v != nil && v.D() < 1e6 {
		c.fail("health_check.check_timeout", "constraint", "must be at least 1 ms")
	}
	if v := hc.TransientCheckDelay; v != nil && v.D() < 1e6 {
		c.fail("health_check.transient_check_delay", "constraint", "must be at least 1 ms")
	}
	checkHTTP := func(field, method, uri string, code *int32) {
		if method != "" && !slices.Contains(validMethods, method) {
			c.fail(field+".method", "constraint", "unknown method %q", method)
		}
		if uri != "" && !strings.HasPrefix(uri, "/") {
			c.fail(field+".uri", "constraint", "must begin with /")
		}
		if uri != "" && strings.ContainsAny(uri, " \t\r\n") {
			c.fail(field+".uri", "constraint", "must not hold white space")
		}
		if code != nil && (*code < 100 || *code > 599) {
			c.fail(field+".code", "constraint", "must be an HTTP status from 100 to 599")
		}
	}
	if h := hc.HTTPConfig; h != nil {
		checkHTTP("health_check.http_config", h.Method, h.URI, h.Code)
	}
	if h := hc.HTTPSConfig; h != nil {
		checkHTTP("health_check.https_config", h.Method, h.URI, h.Code)
	}
	if hc.MySQLConfig != nil && hc.MySQLConfig.User == "" {
		c.fail("health_check.mysql_config.user", "required", "a MySQL check needs a user")
	}
	if hc.PgSQLConfig != nil && hc.PgSQLConfig.User == "" {
		c.fail("health_check.pgsql_config.user", "required", "a PostgreSQL check needs a user")
	}
}

var validCodes = []int32{301, 302, 303, 307, 308}

func validateACL(c *checker, a *ACL, http bool) {
	if act := a.Action; act != nil {
		c.enum("action.type", act.Type.Valid(), act.Type)
		if act.Type == ACLRedirect {
			r := act.Redirect
			switch {
			case r == nil || r.Target == "":
				c.fail("action.redirect.target", "required", "a redirect needs a target")
			default:
				c.enum("action.redirect.type", r.Type.Valid(), r.Type)
				if r.Code != nil && !slices.Contains(validCodes, *r.Code) {
					c.fail("action.redirect.code", "constraint", "must be one of 301, 302, 303, 307 and 308")
				}
				if r.Type == RedirectScheme && r.Target != "http" && r.Target != "https" {
					c.fail("action.redirect.target", "constraint", "a scheme redirect's target is http or https")
				}
			}
			if !http {
				c.fail("action.type", "constraint", "redirects need an http frontend")
			}
		}
	}
	m := a.Match
	if m == nil {
		return
	}
	if m.IPsEdgeServices {
		c.fail("match.ips_edge_services", "constraint", "not supported: lbkit knows no Edge Services addresses; list them in ip_subnet")
	}
	for _, s := range m.IPSubnet {
		if s == nil {
			c.fail("match.ip_subnet", "constraint", "null is not a subnet")
			continue
		}
		if _, err := netip.ParsePrefix(*s); err != nil {
			if _, err := netip.ParseAddr(*s); err != nil {
				c.fail("match.ip_subnet", "constraint", "%q is not an IP address or CIDR subnet", *s)
			}
		}
	}
	c.enum("match.http_filter", m.HTTPFilter.Valid(), m.HTTPFilter)
	if m.HTTPFilter == "" || m.HTTPFilter == HTTPFilterNone {
		return
	}
	if !http {
		c.fail("match.http_filter", "constraint", "HTTP filters need an http frontend")
	}
	if len(m.HTTPFilterValue) == 0 {
		c.fail("match.http_filter_value", "required", "an HTTP filter needs at least one value")
	}
	for _, v := range m.HTTPFilterValue {
		if v == nil {
			c.fail("match.http_filter_value", "constraint", "null is not a value")
			continue
		}
		if m.HTTPFilter == HTTPFilterRegex {
			if _, err := regexp.Compile(*v); err != nil {
				c.fail("match.http_filter_value", "constraint", "%q is not a regular expression: %v", *v, err)
			}
		}
	}
	if m.HTTPFilter == HTTPFilterHeaderMatch && (m.HTTPFilterOption == nil || !validToken(*m.HTTPFilterOption)) {
		c.fail("match.http_filter_option", "required", "http_header_match needs a header name")
	}
}

// compileACL builds a's rule as the runtime does, for what only its
// compiler checks (a redirect target's placeholders).
func compileACL(c *checker, a *ACL) {
	if a.Match == nil || a.Action == nil || (a.Action.Type == ACLRedirect && (a.Action.Redirect == nil || a.Action.Redirect.Code == nil)) {
		return // defaults not applied: Apply gets documents with them
	}
	r, err := aclRule(a)
	if err == nil {
		_, err = acl.Compile(r)
	}
	if err != nil {
		field := "match"
		if a.Action.Type == ACLRedirect {
			field = "action.redirect.target"
		}
		c.fail(field, "constraint", "%v", err)
	}
}

// validateRouteSet checks the routes of each frontend together, with the
// compilers the runtime uses: SNI patterns on a scratch lb.Mux (each at
// most once: a second would silently win), Host routes, with their
// subdomains, through acl.NewRouter.
func validateRouteSet(c *checker, routes []Route) {
	scratch := &lb.Pool{}
	muxes := map[string]*lb.Mux{}
	sni := map[string]map[string]bool{}
	for i := range routes {
		r := &routes[i]
		m := r.Match
		if m == nil {
			continue
		}
		c.at("route", r.ID)
		switch {
		case m.SNI != nil && m.HostHeader == nil && m.PathBegin == nil:
			key := strings.ToLower(strings.TrimSuffix(*m.SNI, "."))
			if sni[r.FrontendID] == nil {
				sni[r.FrontendID], muxes[r.FrontendID] = map[string]bool{}, &lb.Mux{}
			}
			if sni[r.FrontendID][key] {
				c.fail("match.sni", "constraint", "%q is routed twice on frontend %q", *m.SNI, r.FrontendID)
				continue
			}
			sni[r.FrontendID][key] = true
			if err := muxes[r.FrontendID].Handle(*m.SNI, scratch); err != nil {
				c.fail("match.sni", "constraint", "%v", err)
			}
		case m.HostHeader != nil && m.SNI == nil && m.PathBegin == nil:
			hosts := []string{*m.HostHeader}
			if m.MatchSubdomains {
				hosts = append(hosts, "*."+*m.HostHeader)
			}
			if _, err := acl.NewRouter(scratch, acl.Route{Host: hosts, Pool: scratch}); err != nil {
				c.fail("match.host_header", "constraint", "%v", err)
			}
		}
	}
}

func validateCertificate(c *checker, crt *Certificate) {
	c.enum("type", crt.Type.Valid(), crt.Type)
	switch {
	case (crt.CertificateChain == "") == (crt.Letsencrypt == nil):
		c.fail("certificate_chain", "constraint", "set exactly one of certificate_chain (custom) and letsencrypt")
	case crt.Letsencrypt != nil:
		le := crt.Letsencrypt
		// Wildcards need DNS-01, which lbkit does not answer.
		if !validDNSName(le.CommonName) || strings.HasPrefix(le.CommonName, "*.") {
			c.fail("letsencrypt.common_name", "constraint", "%q is not a DNS name without a wildcard", le.CommonName)
		}
		for _, n := range le.SubjectAlternativeName {
			if !validDNSName(n) || strings.HasPrefix(n, "*.") {
				c.fail("letsencrypt.subject_alternative_name", "constraint", "%q is not a DNS name without a wildcard", n)
			}
		}
	default:
		if _, err := ParseChain(crt.CertificateChain); err != nil {
			c.fail("certificate_chain", "constraint", "%v", err)
		}
	}
}

// ParseChain parses a custom certificate's PEM: one or more CERTIFICATE
// blocks (the leaf first) and the leaf's private key, in any order.
func ParseChain(pemData string) (tls.Certificate, error) {
	cert, err := tls.X509KeyPair([]byte(pemData), []byte(pemData))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate chain: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate chain: %w", err)
		}
	}
	return cert, nil
}

// Inspect fills the read-only fields of a custom certificate (common name,
// alternative names, SHA-1 fingerprint, validity, status ready) from its
// PEM chain. A Let's Encrypt certificate is left to the runtime, which
// fills them once it has one.
func (crt *Certificate) Inspect() error {
	if crt.CertificateChain == "" {
		return errors.New("certificate: no certificate_chain")
	}
	cert, err := ParseChain(crt.CertificateChain)
	if err != nil {
		return err
	}
	crt.FillFrom(cert.Leaf)
	return nil
}

// FillFrom sets crt's read-only fields from the leaf certificate.
func (crt *Certificate) FillFrom(leaf *x509.Certificate) {
	sum := sha1.Sum(leaf.Raw)
	crt.CommonName = leaf.Subject.CommonName
	crt.SubjectAlternativeName = append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		crt.SubjectAlternativeName = append(crt.SubjectAlternativeName, ip.String())
	}
	crt.Fingerprint = hex.EncodeToString(sum[:])
	nb, na := leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	crt.NotValidBefore, crt.NotValidAfter = &nb, &na
	crt.Status = CertificateReady
	crt.StatusDetails = nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, b) >= 0 {
			return false
		}
	}
	return true
}

// validDNSName reports whether s, without a leading "*.", is a host name
// (hostname.Valid) whose labels neither start nor end with '-'.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if !hostname.Valid(s) {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return true
}

func validHostPattern(c *checker, field, h string) {
	if !validDNSName(h) {
		if _, err := netip.ParseAddr(h); err != nil {
			c.fail(field, "constraint", "%q is not a host name", h)
		}
	}
}
