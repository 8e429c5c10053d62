package config

import "time"

// Document is one load balancer, whole: what the configuration file holds,
// what a Store keeps and what the runtime builds. Every resource has the
// JSON shape the API returns for it, with two differences: a reference to
// another resource is its id (backend_id, frontend_id) rather than the
// embedded object, and the secrets the API never returns (a custom
// certificate's PEM with its private key, the sticky-cookie and
// session-ticket secrets) are kept here.
//
// A Document is a plain value: the package never retains one it is given
// and never changes one it returned. Use Clone before changing a document
// that others may read.
type Document struct {
	LB           LB            `json:"lb"`
	Backends     []Backend     `json:"backends"`
	Frontends    []Frontend    `json:"frontends"`
	ACLs         []ACL         `json:"acls"`
	Routes       []Route       `json:"routes"`
	Certificates []Certificate `json:"certificates"`
	Subscribers  []Subscriber  `json:"subscribers"`
	Secrets      Secrets       `json:"secrets"`
}

// LB is the load balancer itself. Its addresses are not stored: they are
// the process's (lbproxy's -ip), shown by the API as the load balancer's IPs.
type LB struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	// Type is the commercial offer in the seed; lbkit reports "lbkit".
	Type                  string                `json:"type"`
	SSLCompatibilityLevel SSLCompatibilityLevel `json:"ssl_compatibility_level"`
	// SubscriberID is the subscriber told of server state changes (the
	// seed's SubscribeToLB); empty for none.
	SubscriberID string     `json:"subscriber_id,omitempty"`
	CreatedAt    *time.Time `json:"created_at"`
	UpdatedAt    *time.Time `json:"updated_at"`
}

// Backend is a group of servers and how traffic reaches them. Nil pointer
// fields and empty enums take the defaults of the table in the package
// documentation; ApplyDefaults writes them in.
type Backend struct {
	ID                       string         `json:"id"`
	Name                     string         `json:"name"`
	ForwardProtocol          Protocol       `json:"forward_protocol"`
	ForwardPort              int32          `json:"forward_port"`
	ForwardPortAlgorithm     Algorithm      `json:"forward_port_algorithm"`
	StickySessions           StickySessions `json:"sticky_sessions"`
	StickySessionsCookieName string         `json:"sticky_sessions_cookie_name"`
	HealthCheck              *HealthCheck   `json:"health_check"`
	// Pool is the servers' IP addresses, each reached at ForwardPort.
	Pool                   []string           `json:"pool"`
	SendProxyV2            *bool              `json:"send_proxy_v2,omitempty"`
	TimeoutServer          *Millis            `json:"timeout_server"`
	TimeoutConnect         *Millis            `json:"timeout_connect"`
	TimeoutTunnel          *Millis            `json:"timeout_tunnel"`
	OnMarkedDownAction     OnMarkedDownAction `json:"on_marked_down_action"`
	ProxyProtocol          ProxyProtocol      `json:"proxy_protocol"`
	CreatedAt              *time.Time         `json:"created_at"`
	UpdatedAt              *time.Time         `json:"updated_at"`
	FailoverHost           *string            `json:"failover_host"`
	SSLBridging            *bool              `json:"ssl_bridging"`
	IgnoreSSLServerVerify  *bool              `json:"ignore_ssl_server_verify"`
	RedispatchAttemptCount *int32             `json:"redispatch_attempt_count"`
	MaxRetries             *int32             `json:"max_retries"`
	MaxConnections         *int32             `json:"max_connections"`
	TimeoutQueue           *Duration          `json:"timeout_queue"`
	Host                   *string            `json:"host"`

	// Lbkit holds what lbkit adds beyond the seed. An update that does not
	// carry it keeps the stored one.
	Lbkit *BackendExtensions `json:"lbkit,omitempty"`
}

// BackendExtensions are a backend's settings beyond the seed's.
type BackendExtensions struct {
	// Servers are per-server settings keyed by the server's IP as it
	// appears in Backend.Pool; servers not listed take the defaults
	// (weight 1, not a backup, ready).
	Servers []ServerExtension `json:"servers,omitempty"`

	// DNS, when set, takes the backend's servers from DNS instead of
	// Pool, which must then be empty; servers is then unused. Unset (the
	// default): the servers are Pool's.
	DNS *DNSServers `json:"dns,omitempty"`
}

// DNSServers name the servers of a backend in DNS (lb/dnsservers): the
// name's A and AAAA records, each address a server at Port, or an SRV
// record's targets at each record's port, SRV weights as server weights
// and higher priorities as backups. The backend re-resolves every Interval
// (sooner when a TTL expires first, never within 1 s unless Interval is
// shorter); a failed resolution keeps the last servers. Servers are named
// by their address ("IP:port") and keep their state (health, counters,
// connections) across resolutions and across updates of the document
// that keep the backend's pool.
type DNSServers struct {
	// Name is the DNS name resolved, without search domains; with SRV,
	// the record's name (_service._proto.name). Required.
	Name string `json:"name"`
	// SRV resolves Name's SRV records instead of its addresses (default
	// false).
	SRV bool `json:"srv,omitempty"`
	// Server is the DNS server asked, as host:port; empty (the default)
	// means the nameservers of /etc/resolv.conf.
	Server string `json:"server,omitempty"`
	// Interval is the time between resolutions, at least 100 ms; unset
	// means 30000 ms (30 s).
	Interval *Millis `json:"interval,omitempty"`
	// Port is the servers' port for address records; 0 (the default)
	// means the backend's forward_port. SRV records carry their own.
	Port int32 `json:"port,omitempty"`
}

// ServerExtension is one server's settings beyond the seed's.
type ServerExtension struct {
	IP string `json:"ip"`
	// Weight is the server's share relative to the others (default 1;
	// 0 takes no new traffic, as HAProxy's weight 0), at most 256.
	Weight *int32 `json:"weight,omitempty"`
	// Backup servers take traffic only when no regular server is up.
	Backup bool `json:"backup,omitempty"`
	// AdminState is the runtime state (default ready).
	AdminState AdminState `json:"admin_state,omitempty"`
}

// HealthCheck is a backend's active health check. At most one of the
// *Config fields is set; none means a TCP connect check.
type HealthCheck struct {
	// Port is the port checked; 0, the default, means each server's own
	// port (forward_port, or the port DNS gives it), following a change
	// of forward_port.
	Port                int32             `json:"port"`
	CheckDelay          *Millis           `json:"check_delay"`
	CheckTimeout        *Millis           `json:"check_timeout"`
	CheckMaxRetries     int32             `json:"check_max_retries"`
	TCPConfig           *struct{}         `json:"tcp_config,omitempty"`
	MySQLConfig         *HealthCheckUser  `json:"mysql_config,omitempty"`
	PgSQLConfig         *HealthCheckUser  `json:"pgsql_config,omitempty"`
	LDAPConfig          *struct{}         `json:"ldap_config,omitempty"`
	RedisConfig         *struct{}         `json:"redis_config,omitempty"`
	HTTPConfig          *HealthCheckHTTP  `json:"http_config,omitempty"`
	HTTPSConfig         *HealthCheckHTTPS `json:"https_config,omitempty"`
	CheckSendProxy      bool              `json:"check_send_proxy"`
	TransientCheckDelay *Duration         `json:"transient_check_delay"`
}

// HealthCheckUser is the user of a MySQL or PostgreSQL check.
type HealthCheckUser struct {
	User string `json:"user"`
}

// HealthCheckHTTP is an HTTP check: Method (default GET) on URI, passing
// when the status is Code (default: any 2xx or 3xx).
type HealthCheckHTTP struct {
	URI        string `json:"uri"`
	Method     string `json:"method"`
	Code       *int32 `json:"code"`
	HostHeader string `json:"host_header"`
}

// HealthCheckHTTPS is an HTTP check over TLS, with the SNI to send.
type HealthCheckHTTPS struct {
	URI        string `json:"uri"`
	Method     string `json:"method"`
	Code       *int32 `json:"code"`
	HostHeader string `json:"host_header"`
	SNI        string `json:"sni"`
}

// Frontend is a port on the load balancer's IPs and what it does.
type Frontend struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	InboundPort int32  `json:"inbound_port"`
	// BackendID is the default backend; routes choose others.
	BackendID      string   `json:"backend_id"`
	TimeoutClient  *Millis  `json:"timeout_client"`
	CertificateIDs []string `json:"certificate_ids"`
	EnableHTTP3    bool     `json:"enable_http3"`
	// ConnectionRateLimit is new connections per second; nil or 0: none.
	ConnectionRateLimit *uint32    `json:"connection_rate_limit"`
	EnableAccessLogs    bool       `json:"enable_access_logs"`
	CreatedAt           *time.Time `json:"created_at"`
	UpdatedAt           *time.Time `json:"updated_at"`

	// Lbkit holds what lbkit adds beyond the seed. An update that does not
	// carry it keeps the stored one.
	Lbkit *FrontendExtensions `json:"lbkit,omitempty"`
}

// FrontendExtensions are a frontend's settings beyond the seed's: the
// limits of lb.Limits. Zero values mean no limit.
type FrontendExtensions struct {
	MaxConnections       int32   `json:"max_connections,omitempty"`
	ClientMaxConnections int32   `json:"client_max_connections,omitempty"`
	ClientRate           float64 `json:"client_rate,omitempty"`
	ClientBurst          int32   `json:"client_burst,omitempty"`
}

// ACL is one access rule of a frontend, applied in Index order.
type ACL struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	FrontendID  string     `json:"frontend_id"`
	Index       int32      `json:"index"`
	Description string     `json:"description"`
	Match       *ACLMatch  `json:"match"`
	Action      *ACLAction `json:"action"`
	CreatedAt   *time.Time `json:"created_at"`
	UpdatedAt   *time.Time `json:"updated_at"`
}

// ACLMatch is an ACL's condition; an empty one matches everything.
type ACLMatch struct {
	IPSubnet         []*string  `json:"ip_subnet"`
	IPsEdgeServices  bool       `json:"ips_edge_services"`
	HTTPFilter       HTTPFilter `json:"http_filter"`
	HTTPFilterValue  []*string  `json:"http_filter_value"`
	HTTPFilterOption *string    `json:"http_filter_option"`
	Invert           bool       `json:"invert"`
}

// ACLAction is what an ACL does when it matches.
type ACLAction struct {
	Type     ACLActionType      `json:"type"`
	Redirect *ACLActionRedirect `json:"redirect"`
}

// ACLActionRedirect is a redirect's target and status code (default 302).
type ACLActionRedirect struct {
	Type   RedirectType `json:"type"`
	Target string       `json:"target"`
	Code   *int32       `json:"code"`
}

// Route sends a frontend's matching traffic to another backend than its
// default one.
type Route struct {
	ID         string      `json:"id"`
	FrontendID string      `json:"frontend_id"`
	BackendID  string      `json:"backend_id"`
	Match      *RouteMatch `json:"match"`
	CreatedAt  *time.Time  `json:"created_at"`
	UpdatedAt  *time.Time  `json:"updated_at"`
}

// RouteMatch is exactly one of SNI (TCP backends), HostHeader or
// PathBegin (HTTP backends).
type RouteMatch struct {
	SNI             *string `json:"sni,omitempty"`
	HostHeader      *string `json:"host_header,omitempty"`
	MatchSubdomains bool    `json:"match_subdomains"`
	PathBegin       *string `json:"path_begin,omitempty"`
}

// Certificate is a TLS certificate of the load balancer: custom (a PEM
// chain with its private key, CertificateChain) or from Let's Encrypt
// (Letsencrypt). The read-only fields (common name, names, fingerprint,
// validity, status) are filled from the certificate itself.
type Certificate struct {
	ID                     string            `json:"id"`
	Name                   string            `json:"name"`
	Type                   CertificateType   `json:"type"`
	CommonName             string            `json:"common_name"`
	SubjectAlternativeName []string          `json:"subject_alternative_name"`
	Fingerprint            string            `json:"fingerprint"`
	NotValidBefore         *time.Time        `json:"not_valid_before"`
	NotValidAfter          *time.Time        `json:"not_valid_after"`
	Status                 CertificateStatus `json:"status"`
	StatusDetails          *string           `json:"status_details"`
	CreatedAt              *time.Time        `json:"created_at"`
	UpdatedAt              *time.Time        `json:"updated_at"`

	// CertificateChain is the custom certificate's PEM: the chain and its
	// private key. Never returned by the API.
	CertificateChain string `json:"certificate_chain,omitempty"`
	// Letsencrypt asks for a certificate over ACME for these names.
	Letsencrypt *Letsencrypt `json:"letsencrypt,omitempty"`
}

// Letsencrypt names the certificate to obtain over ACME (HTTP-01 or
// TLS-ALPN-01 on the load balancer's own frontends).
type Letsencrypt struct {
	CommonName             string   `json:"common_name"`
	SubjectAlternativeName []string `json:"subject_alternative_name"`
}

// Subscriber is told of server state changes: a webhook is called with a
// JSON body; an email address is recorded but lbkit sends no mail.
type Subscriber struct {
	ID            string                   `json:"id"`
	Name          string                   `json:"name"`
	EmailConfig   *SubscriberEmailConfig   `json:"email_config,omitempty"`
	WebhookConfig *SubscriberWebhookConfig `json:"webhook_config,omitempty"`
}

// SubscriberEmailConfig is an email subscriber.
type SubscriberEmailConfig struct {
	Email string `json:"email"`
}

// SubscriberWebhookConfig is a webhook subscriber.
type SubscriberWebhookConfig struct {
	URI string `json:"uri"`
}

// Secrets are what every instance serving this document must share and the
// API never returns.
type Secrets struct {
	// StickyCookieSecret keys the sticky cookies (at least 16 bytes): the
	// instances that share it honour each other's cookies. Manager.Update
	// draws one at random when it is empty; a file without one gets a
	// random key per process.
	StickyCookieSecret string `json:"sticky_cookie_secret,omitempty"`
	// SessionTicketSecret derives the TLS session-ticket keys, so that a
	// client resumes its session on any instance; at least 16 bytes
	// (tlsmode.MinTicketSecret), here and in RuntimeOptions.Secrets, where
	// a shorter one makes every TLS frontend fail to build. Empty: each
	// process has its own keys.
	SessionTicketSecret string `json:"session_ticket_secret,omitempty"`
}
