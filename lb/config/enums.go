package config

import "slices"

// The API's enumerations, with the strings it sends. Each type's Valid
// reports whether a value is one the API defines; the empty string is
// valid everywhere and stands for the default.

// Protocol is a backend's forward_protocol.
type Protocol string

// Protocols.
const (
	ProtocolTCP  Protocol = "tcp"
	ProtocolHTTP Protocol = "http"
)

// Valid reports whether p is empty or a known protocol.
func (p Protocol) Valid() bool { return oneOf(p, "", ProtocolTCP, ProtocolHTTP) }

// Algorithm is a backend's forward_port_algorithm.
type Algorithm string

// Algorithms of the seed.
const (
	AlgorithmRoundRobin Algorithm = "roundrobin"
	AlgorithmLeastConn  Algorithm = "leastconn"
	AlgorithmFirst      Algorithm = "first"
)

// Valid reports whether a is empty or a known algorithm.
func (a Algorithm) Valid() bool {
	return oneOf(a, "", AlgorithmRoundRobin, AlgorithmLeastConn, AlgorithmFirst)
}

// StickySessions is a backend's sticky_sessions.
type StickySessions string

// Stickiness kinds.
const (
	StickyNone   StickySessions = "none"
	StickyCookie StickySessions = "cookie"
	StickyTable  StickySessions = "table"
)

// Valid reports whether s is empty or a known kind.
func (s StickySessions) Valid() bool { return oneOf(s, "", StickyNone, StickyCookie, StickyTable) }

// ProxyProtocol is a backend's proxy_protocol.
type ProxyProtocol string

// PROXY protocol versions; Unknown means unset and is treated as None.
const (
	ProxyProtocolUnknown ProxyProtocol = "proxy_protocol_unknown"
	ProxyProtocolNone    ProxyProtocol = "proxy_protocol_none"
	ProxyProtocolV1      ProxyProtocol = "proxy_protocol_v1"
	ProxyProtocolV2      ProxyProtocol = "proxy_protocol_v2"
	ProxyProtocolV2SSL   ProxyProtocol = "proxy_protocol_v2_ssl"
	ProxyProtocolV2SSLCN ProxyProtocol = "proxy_protocol_v2_ssl_cn"
)

// Valid reports whether p is empty or a known value.
func (p ProxyProtocol) Valid() bool {
	return oneOf(p, "", ProxyProtocolUnknown, ProxyProtocolNone, ProxyProtocolV1,
		ProxyProtocolV2, ProxyProtocolV2SSL, ProxyProtocolV2SSLCN)
}

// OnMarkedDownAction is a backend's on_marked_down_action.
type OnMarkedDownAction string

// Actions when a server is marked down.
const (
	OnMarkedDownNone             OnMarkedDownAction = "on_marked_down_action_none"
	OnMarkedDownShutdownSessions OnMarkedDownAction = "shutdown_sessions"
)

// Valid reports whether a is empty or a known action.
func (a OnMarkedDownAction) Valid() bool {
	return oneOf(a, "", OnMarkedDownNone, OnMarkedDownShutdownSessions)
}

// SSLCompatibilityLevel is the load balancer's TLS profile for offloading.
type SSLCompatibilityLevel string

// TLS profiles; Unknown lets lbkit choose (intermediate).
const (
	SSLUnknown      SSLCompatibilityLevel = "ssl_compatibility_level_unknown"
	SSLIntermediate SSLCompatibilityLevel = "ssl_compatibility_level_intermediate"
	SSLModern       SSLCompatibilityLevel = "ssl_compatibility_level_modern"
	SSLOld          SSLCompatibilityLevel = "ssl_compatibility_level_old"
)

// Valid reports whether l is empty or a known profile.
func (l SSLCompatibilityLevel) Valid() bool {
	return oneOf(l, "", SSLUnknown, SSLIntermediate, SSLModern, SSLOld)
}

// ACLActionType is what an ACL does when it matches.
type ACLActionType string

// ACL actions.
const (
	ACLAllow    ACLActionType = "allow"
	ACLDeny     ACLActionType = "deny"
	ACLRedirect ACLActionType = "redirect"
)

// Valid reports whether t is empty or a known action.
func (t ACLActionType) Valid() bool { return oneOf(t, "", ACLAllow, ACLDeny, ACLRedirect) }

// RedirectType says whether a redirect's target is a location or a scheme.
type RedirectType string

// Redirect kinds.
const (
	RedirectLocation RedirectType = "location"
	RedirectScheme   RedirectType = "scheme"
)

// Valid reports whether t is empty or a known kind.
func (t RedirectType) Valid() bool { return oneOf(t, "", RedirectLocation, RedirectScheme) }

// HTTPFilter is an ACL's HTTP condition.
type HTTPFilter string

// HTTP filters.
const (
	HTTPFilterNone        HTTPFilter = "acl_http_filter_none"
	HTTPFilterPathBegin   HTTPFilter = "path_begin"
	HTTPFilterPathEnd     HTTPFilter = "path_end"
	HTTPFilterRegex       HTTPFilter = "regex"
	HTTPFilterHeaderMatch HTTPFilter = "http_header_match"
)

// Valid reports whether f is empty or a known filter.
func (f HTTPFilter) Valid() bool {
	return oneOf(f, "", HTTPFilterNone, HTTPFilterPathBegin, HTTPFilterPathEnd, HTTPFilterRegex, HTTPFilterHeaderMatch)
}

// CertificateType says where a certificate comes from.
type CertificateType string

// Certificate types ("letsencryt" is the API's legacy spelling, accepted on
// input and never produced).
const (
	CertificateLetsencrypt       CertificateType = "letsencrypt"
	CertificateLetsencryptLegacy CertificateType = "letsencryt"
	CertificateCustom            CertificateType = "custom"
)

// Valid reports whether t is empty or a known type.
func (t CertificateType) Valid() bool {
	return oneOf(t, "", CertificateLetsencrypt, CertificateLetsencryptLegacy, CertificateCustom)
}

// CertificateStatus is a certificate's state.
type CertificateStatus string

// Certificate states.
const (
	CertificatePending CertificateStatus = "pending"
	CertificateReady   CertificateStatus = "ready"
	CertificateError   CertificateStatus = "error"
)

// AdminState is lbkit's runtime state of a server, set through the runtime
// API (HAProxy's "set server state"); it is not part of the seed.
type AdminState string

// Admin states: ready serves; drain takes no new sessions but keeps the
// current ones (and sticky clients); maint takes nothing.
const (
	AdminReady AdminState = "ready"
	AdminDrain AdminState = "drain"
	AdminMaint AdminState = "maint"
)

// Valid reports whether s is empty or a known state.
func (s AdminState) Valid() bool { return oneOf(s, "", AdminReady, AdminDrain, AdminMaint) }

func oneOf[T comparable](v T, set ...T) bool { return slices.Contains(set, v) }
