package api

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// The responses: the document's resources in the API's shapes, with the
// embedded objects the API's clients expect (a backend embeds its load
// balancer, a frontend its backend and load balancer, an ACL its frontend,
// a certificate its load balancer). Secrets never appear.

// where is the zone or region a request named, echoed in the responses.
type where struct {
	Zone   string  `json:"zone"`
	Region *string `json:"region,omitempty"`
}

type ipView struct {
	ID             string   `json:"id"`
	IPAddress      string   `json:"ip_address"`
	OrganizationID string   `json:"organization_id"`
	ProjectID      string   `json:"project_id"`
	LBID           *string  `json:"lb_id"`
	Reverse        string   `json:"reverse"`
	Tags           []string `json:"tags"`
	where
}

type instanceView struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	IPAddress string     `json:"ip_address"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	where
}

type lbView struct {
	ID                    string                       `json:"id"`
	Name                  string                       `json:"name"`
	Description           string                       `json:"description"`
	Status                string                       `json:"status"`
	Instances             []instanceView               `json:"instances"`
	OrganizationID        string                       `json:"organization_id"`
	ProjectID             string                       `json:"project_id"`
	IP                    []ipView                     `json:"ip"`
	Tags                  []string                     `json:"tags"`
	FrontendCount         int32                        `json:"frontend_count"`
	BackendCount          int32                        `json:"backend_count"`
	Type                  string                       `json:"type"`
	Subscriber            *config.Subscriber           `json:"subscriber"`
	SSLCompatibilityLevel config.SSLCompatibilityLevel `json:"ssl_compatibility_level"`
	CreatedAt             *time.Time                   `json:"created_at"`
	UpdatedAt             *time.Time                   `json:"updated_at"`
	PrivateNetworkCount   int32                        `json:"private_network_count"`
	RouteCount            int32                        `json:"route_count"`
	where
}

type backendView struct {
	config.Backend
	LB *lbView `json:"lb"`
}

type frontendView struct {
	config.Frontend
	Backend *backendView `json:"backend"`
	LB      *lbView      `json:"lb"`
}

type aclView struct {
	config.ACL
	Frontend *frontendView `json:"frontend"`
}

type certificateView struct {
	config.Certificate
	LB *lbView `json:"lb"`
}

type serverStatView struct {
	InstanceID string `json:"instance_id"`
	config.ServerStat
}

// view builds the responses of one document for one request.
type view struct {
	doc   *config.Document
	at    where
	ips   []netip.Addr
	certs CertificateSource
	// lbv is the load balancer's view, built once per request: every
	// backend, frontend and certificate of a list embeds the same one.
	lbv *lbView
}

// ipID is the stable id of one of the load balancer's addresses: a UUID
// derived from the address.
func ipID(a netip.Addr) string {
	s := sha256.Sum256(a.AsSlice())
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

func (v *view) ip(a netip.Addr) ipView {
	id := lbID(v.doc)
	return ipView{ID: ipID(a), IPAddress: a.String(), LBID: &id, Tags: []string{}, where: v.at}
}

// lb returns the load balancer's view, built on the first call of this
// request and shared by every object that embeds it (it is not modified
// after).
func (v *view) lb() *lbView {
	if v.lbv != nil {
		return v.lbv
	}
	d := v.doc
	l := &lbView{
		ID: lbID(d), Name: d.LB.Name, Description: d.LB.Description, Status: "ready",
		Tags: d.LB.Tags, Type: d.LB.Type, SSLCompatibilityLevel: d.LB.SSLCompatibilityLevel,
		FrontendCount: int32(len(d.Frontends)), BackendCount: int32(len(d.Backends)),
		RouteCount: int32(len(d.Routes)), CreatedAt: d.LB.CreatedAt, UpdatedAt: d.LB.UpdatedAt,
		IP: []ipView{}, Instances: []instanceView{}, where: v.at,
	}
	if l.Tags == nil {
		l.Tags = []string{}
	}
	for _, a := range v.ips {
		l.IP = append(l.IP, v.ip(a))
	}
	inst := instanceView{ID: l.ID, Status: "ready", CreatedAt: d.LB.CreatedAt, UpdatedAt: d.LB.UpdatedAt, where: v.at}
	if len(v.ips) > 0 {
		inst.IPAddress = v.ips[0].String()
	}
	l.Instances = append(l.Instances, inst)
	if id := d.LB.SubscriberID; id != "" {
		if s := findSubscriber(d, id); s != nil {
			c := *s
			l.Subscriber = &c
		}
	}
	v.lbv = l
	return l
}

func (v *view) backend(b *config.Backend) *backendView {
	out := &backendView{Backend: *b, LB: v.lb()}
	if out.Pool == nil {
		out.Pool = []string{}
	}
	return out
}

func (v *view) frontend(f *config.Frontend) *frontendView {
	out := &frontendView{Frontend: *f, LB: v.lb()}
	if out.CertificateIDs == nil {
		out.CertificateIDs = []string{}
	}
	if b := findBackend(v.doc, f.BackendID); b != nil {
		out.Backend = v.backend(b)
	}
	return out
}

func (v *view) acl(a *config.ACL) *aclView {
	out := &aclView{ACL: *a}
	if f := findFrontend(v.doc, a.FrontendID); f != nil {
		out.Frontend = v.frontend(f)
	}
	return out
}

func (v *view) certificate(c *config.Certificate) *certificateView {
	out := &certificateView{Certificate: *c, LB: v.lb()}
	if v.certs != nil {
		if live, ok := v.certs.Certificate(c.ID); ok {
			out.Status, out.StatusDetails = live.Status, live.StatusDetails
			out.CommonName, out.SubjectAlternativeName, out.Fingerprint = live.CommonName, live.SubjectAlternativeName, live.Fingerprint
			out.NotValidBefore, out.NotValidAfter = live.NotValidBefore, live.NotValidAfter
		}
	}
	out.CertificateChain = ""
	out.Letsencrypt = nil
	return out
}

func find[T any](items []T, id string, idOf func(*T) string) *T {
	for i := range items {
		if idOf(&items[i]) == id {
			return &items[i]
		}
	}
	return nil
}

func findBackend(d *config.Document, id string) *config.Backend {
	return find(d.Backends, id, func(b *config.Backend) string { return b.ID })
}

func findFrontend(d *config.Document, id string) *config.Frontend {
	return find(d.Frontends, id, func(f *config.Frontend) string { return f.ID })
}

func findACL(d *config.Document, id string) *config.ACL {
	return find(d.ACLs, id, func(a *config.ACL) string { return a.ID })
}

func findRoute(d *config.Document, id string) *config.Route {
	return find(d.Routes, id, func(r *config.Route) string { return r.ID })
}

func findCertificate(d *config.Document, id string) *config.Certificate {
	return find(d.Certificates, id, func(c *config.Certificate) string { return c.ID })
}

func findSubscriber(d *config.Document, id string) *config.Subscriber {
	return find(d.Subscribers, id, func(s *config.Subscriber) string { return s.ID })
}
