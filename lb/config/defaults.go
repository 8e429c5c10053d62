package config

import "time"

// The canonical defaults, one table (see the package documentation). They
// follow lbkit's specification where it names a value and the seed's
// console otherwise, so that every client of the API sees the same ones.
const (
	DefaultTimeoutClient       = 5 * time.Minute
	DefaultTimeoutServer       = 5 * time.Minute
	DefaultTimeoutConnect      = 5 * time.Second
	DefaultTimeoutTunnel       = 15 * time.Minute
	DefaultTimeoutQueue        = 5 * time.Second
	DefaultMaxRetries          = 3
	DefaultCheckDelay          = 3 * time.Second
	DefaultCheckTimeout        = time.Second
	DefaultCheckMaxRetries     = 3
	DefaultTransientCheckDelay = 500 * time.Millisecond
	DefaultCheckRise           = 2
	DefaultRedirectCode        = 302
	DefaultHTTPCheckMethod     = "GET"
	DefaultHTTPCheckURI        = "/"
	// DefaultDrainGrace is how long a removed frontend or server keeps its
	// open connections before they are closed.
	DefaultDrainGrace = 30 * time.Second
)

func ptr[T any](v T) *T { return &v }

// ApplyDefaults fills every unset field of d with its default, in place,
// and returns d. What the defaults fill is what the API returns for the
// resource; the runtime treats an unset field and its default alike.
func (d *Document) ApplyDefaults() *Document {
	if d.LB.Type == "" {
		d.LB.Type = "lbkit"
	}
	if d.LB.SSLCompatibilityLevel == "" || d.LB.SSLCompatibilityLevel == SSLUnknown {
		d.LB.SSLCompatibilityLevel = SSLIntermediate
	}
	if d.LB.Tags == nil {
		d.LB.Tags = []string{}
	}
	for i := range d.Backends {
		d.Backends[i].ApplyDefaults()
	}
	for i := range d.Frontends {
		d.Frontends[i].ApplyDefaults()
	}
	for i := range d.ACLs {
		d.ACLs[i].ApplyDefaults()
	}
	for i := range d.Routes {
		if d.Routes[i].Match == nil {
			d.Routes[i].Match = &RouteMatch{}
		}
	}
	for i := range d.Certificates {
		c := &d.Certificates[i]
		if c.Type == CertificateLetsencryptLegacy {
			c.Type = CertificateLetsencrypt
		}
		if c.Type == "" {
			c.Type = CertificateCustom
			if c.Letsencrypt != nil {
				c.Type = CertificateLetsencrypt
			}
		}
		if c.SubjectAlternativeName == nil {
			c.SubjectAlternativeName = []string{}
		}
	}
	return d
}

// ApplyDefaults fills b's unset fields with their defaults, in place.
// RedispatchAttemptCount stays unset: unset means every retry goes to
// another server, which no value of the field says.
func (b *Backend) ApplyDefaults() {
	if b.Name == "" {
		b.Name = b.ID
	}
	if b.ForwardProtocol == "" {
		b.ForwardProtocol = ProtocolTCP
	}
	if b.ForwardPortAlgorithm == "" {
		b.ForwardPortAlgorithm = AlgorithmRoundRobin
	}
	if b.StickySessions == "" {
		b.StickySessions = StickyNone
	}
	if b.ProxyProtocol == "" || b.ProxyProtocol == ProxyProtocolUnknown {
		b.ProxyProtocol = ProxyProtocolNone
		if b.SendProxyV2 != nil && *b.SendProxyV2 {
			b.ProxyProtocol = ProxyProtocolV2
		}
	}
	if b.OnMarkedDownAction == "" {
		b.OnMarkedDownAction = OnMarkedDownNone
	}
	if b.Pool == nil {
		b.Pool = []string{}
	}
	setMillis(&b.TimeoutServer, DefaultTimeoutServer)
	setMillis(&b.TimeoutConnect, DefaultTimeoutConnect)
	setMillis(&b.TimeoutTunnel, DefaultTimeoutTunnel)
	if b.TimeoutQueue == nil {
		b.TimeoutQueue = ptr(Duration(DefaultTimeoutQueue))
	}
	if b.MaxRetries == nil {
		b.MaxRetries = ptr(int32(DefaultMaxRetries))
	}
	if b.SSLBridging == nil {
		b.SSLBridging = ptr(false)
	}
	if b.IgnoreSSLServerVerify == nil {
		b.IgnoreSSLServerVerify = ptr(false)
	}
	if b.HealthCheck == nil {
		b.HealthCheck = &HealthCheck{}
	}
	hc := b.HealthCheck // Port 0 stays: each server's own port
	setMillis(&hc.CheckDelay, DefaultCheckDelay)
	setMillis(&hc.CheckTimeout, DefaultCheckTimeout)
	if hc.CheckMaxRetries == 0 {
		hc.CheckMaxRetries = DefaultCheckMaxRetries
	}
	if hc.TransientCheckDelay == nil {
		hc.TransientCheckDelay = ptr(Duration(DefaultTransientCheckDelay))
	}
	if hc.checkKinds() == 0 {
		hc.TCPConfig = &struct{}{}
	}
	if c := hc.HTTPConfig; c != nil {
		c.Method = orDefault(c.Method, DefaultHTTPCheckMethod)
		c.URI = orDefault(c.URI, DefaultHTTPCheckURI)
	}
	if c := hc.HTTPSConfig; c != nil {
		c.Method = orDefault(c.Method, DefaultHTTPCheckMethod)
		c.URI = orDefault(c.URI, DefaultHTTPCheckURI)
	}
}

// ApplyDefaults fills f's unset fields with their defaults, in place.
func (f *Frontend) ApplyDefaults() {
	if f.Name == "" {
		f.Name = f.ID
	}
	setMillis(&f.TimeoutClient, DefaultTimeoutClient)
	if f.CertificateIDs == nil {
		f.CertificateIDs = []string{}
	}
}

// ApplyDefaults fills a's unset fields with their defaults, in place.
func (a *ACL) ApplyDefaults() {
	if a.Match == nil {
		a.Match = &ACLMatch{}
	}
	if a.Match.HTTPFilter == "" {
		a.Match.HTTPFilter = HTTPFilterNone
	}
	if a.Match.IPSubnet == nil {
		a.Match.IPSubnet = []*string{}
	}
	if a.Match.HTTPFilterValue == nil {
		a.Match.HTTPFilterValue = []*string{}
	}
	if a.Action == nil {
		a.Action = &ACLAction{}
	}
	if a.Action.Type == "" {
		a.Action.Type = ACLAllow
	}
	if r := a.Action.Redirect; r != nil {
		if r.Type == "" {
			r.Type = RedirectLocation
		}
		if r.Code == nil {
			r.Code = ptr(int32(DefaultRedirectCode))
		}
	}
}

func setMillis(p **Millis, d time.Duration) {
	if *p == nil {
		*p = ptr(Millis(d))
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (hc *HealthCheck) checkKinds() int {
	n := 0
	for _, set := range []bool{hc.TCPConfig != nil, hc.MySQLConfig != nil, hc.PgSQLConfig != nil,
		hc.LDAPConfig != nil, hc.RedisConfig != nil, hc.HTTPConfig != nil, hc.HTTPSConfig != nil} {
		if set {
			n++
		}
	}
	return n
}
