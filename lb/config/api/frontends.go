package api

import (
	"net/http"
	"slices"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// frontendRequest is the body of CreateFrontend and UpdateFrontend.
type frontendRequest struct {
	Name                string                     `json:"name"`
	InboundPort         int32                      `json:"inbound_port"`
	BackendID           string                     `json:"backend_id"`
	TimeoutClient       *config.Millis             `json:"timeout_client"`
	CertificateID       *string                    `json:"certificate_id"`
	CertificateIDs      *[]string                  `json:"certificate_ids"`
	EnableHTTP3         bool                       `json:"enable_http3"`
	ConnectionRateLimit *uint32                    `json:"connection_rate_limit"`
	EnableAccessLogs    *bool                      `json:"enable_access_logs"`
	Lbkit               *config.FrontendExtensions `json:"lbkit"`
}

func (q *frontendRequest) apply(f *config.Frontend) {
	f.Name, f.InboundPort, f.BackendID, f.TimeoutClient = q.Name, q.InboundPort, q.BackendID, q.TimeoutClient
	f.CertificateIDs = []string{}
	if q.CertificateIDs != nil {
		f.CertificateIDs = slices.Clone(*q.CertificateIDs)
	}
	if q.CertificateID != nil && *q.CertificateID != "" && !slices.Contains(f.CertificateIDs, *q.CertificateID) {
		f.CertificateIDs = append([]string{*q.CertificateID}, f.CertificateIDs...)
	}
	f.EnableHTTP3, f.ConnectionRateLimit = q.EnableHTTP3, q.ConnectionRateLimit
	f.EnableAccessLogs = q.EnableAccessLogs != nil && *q.EnableAccessLogs
	if q.Lbkit != nil {
		f.Lbkit = q.Lbkit
	}
}

func (h *Handler) listFrontends(r *http.Request, at where) (int, any, error) {
	return h.listOnLB(r, at, func(d *config.Document, v *view, p page) any {
		page, total := list(p, d.Frontends, func(f config.Frontend) string { return f.Name }, func(f config.Frontend) *time.Time { return f.CreatedAt })
		return map[string]any{"frontends": viewsOf(page, v.frontend), "total_count": total}
	})
}

func (h *Handler) getFrontend(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("frontend_id")
		f := findFrontend(d, id)
		if f == nil {
			return nil, notFound("frontend", id)
		}
		return v.frontend(f), nil
	})
}

func showFrontend(id string) func(*config.Document, *view) any {
	return func(d *config.Document, v *view) any { return v.frontend(findFrontend(d, id)) }
}

func (h *Handler) createFrontend(r *http.Request, at where) (int, any, error) {
	var req frontendRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := newID()
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		f := config.Frontend{ID: id}
		req.apply(&f)
		touch(&f.CreatedAt, &f.UpdatedAt)
		d.Frontends = append(d.Frontends, f)
		return nil
	}, showFrontend(id))
}

func (h *Handler) updateFrontend(r *http.Request, at where) (int, any, error) {
	var req frontendRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("frontend_id")
	return h.write(r, at, func(d *config.Document) error {
		f := findFrontend(d, id)
		if f == nil {
			return notFound("frontend", id)
		}
		req.apply(f)
		touch(&f.CreatedAt, &f.UpdatedAt)
		return nil
	}, showFrontend(id))
}

// deleteFrontend deletes a frontend with its ACLs and routes.
func (h *Handler) deleteFrontend(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("frontend_id")
	return h.write(r, at, func(d *config.Document) error {
		if findFrontend(d, id) == nil {
			return notFound("frontend", id)
		}
		d.Frontends = deleteByID(d.Frontends, id, func(f *config.Frontend) string { return f.ID })
		d.ACLs = slices.DeleteFunc(d.ACLs, func(a config.ACL) bool { return a.FrontendID == id })
		d.Routes = slices.DeleteFunc(d.Routes, func(rt config.Route) bool { return rt.FrontendID == id })
		return nil
	}, nil)
}

// aclRequest is the body of CreateACL and UpdateACL, and one ACL of SetACLs.
type aclRequest struct {
	Name        string            `json:"name"`
	Action      *config.ACLAction `json:"action"`
	Match       *config.ACLMatch  `json:"match"`
	Index       int32             `json:"index"`
	Description *string           `json:"description"`
}

func (q *aclRequest) apply(a *config.ACL) {
	a.Name, a.Action, a.Match, a.Index = q.Name, q.Action, q.Match, q.Index
	a.Description = ""
	if q.Description != nil {
		a.Description = *q.Description
	}
}

func (h *Handler) listACLs(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("frontend_id")
		if findFrontend(d, id) == nil {
			return nil, notFound("frontend", id)
		}
		return aclList(d, v, id, p), nil
	})
}

func aclList(d *config.Document, v *view, frontendID string, p page) map[string]any {
	var acls []config.ACL
	for _, a := range d.ACLs {
		if a.FrontendID == frontendID {
			acls = append(acls, a)
		}
	}
	page, total := list(p, acls, func(a config.ACL) string { return a.Name }, func(a config.ACL) *time.Time { return a.CreatedAt })
	return map[string]any{"acls": viewsOf(page, v.acl), "total_count": total}
}

func (h *Handler) getACL(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("acl_id")
		a := findACL(d, id)
		if a == nil {
			return nil, notFound("acl", id)
		}
		return v.acl(a), nil
	})
}

func showACL(id string) func(*config.Document, *view) any {
	return func(d *config.Document, v *view) any { return v.acl(findACL(d, id)) }
}

func (h *Handler) createACL(r *http.Request, at where) (int, any, error) {
	var req aclRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id, fid := newID(), r.PathValue("frontend_id")
	return h.write(r, at, func(d *config.Document) error {
		if findFrontend(d, fid) == nil {
			return notFound("frontend", fid)
		}
		a := config.ACL{ID: id, FrontendID: fid}
		req.apply(&a)
		touch(&a.CreatedAt, &a.UpdatedAt)
		d.ACLs = append(d.ACLs, a)
		return nil
	}, showACL(id))
}

func (h *Handler) updateACL(r *http.Request, at where) (int, any, error) {
	var req aclRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("acl_id")
	return h.write(r, at, func(d *config.Document) error {
		a := findACL(d, id)
		if a == nil {
			return notFound("acl", id)
		}
		req.apply(a)
		touch(&a.CreatedAt, &a.UpdatedAt)
		return nil
	}, showACL(id))
}

func (h *Handler) deleteACL(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("acl_id")
	return h.write(r, at, func(d *config.Document) error {
		if findACL(d, id) == nil {
			return notFound("acl", id)
		}
		d.ACLs = deleteByID(d.ACLs, id, func(a *config.ACL) string { return a.ID })
		return nil
	}, nil)
}

type setACLsRequest struct {
	ACLs []aclRequest `json:"acls"`
}

// setACLs replaces every ACL of a frontend in one write.
func (h *Handler) setACLs(r *http.Request, at where) (int, any, error) {
	var req setACLsRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	fid := r.PathValue("frontend_id")
	return h.write(r, at, func(d *config.Document) error {
		if findFrontend(d, fid) == nil {
			return notFound("frontend", fid)
		}
		d.ACLs = slices.DeleteFunc(d.ACLs, func(a config.ACL) bool { return a.FrontendID == fid })
		for _, q := range req.ACLs {
			a := config.ACL{ID: newID(), FrontendID: fid}
			q.apply(&a)
			touch(&a.CreatedAt, &a.UpdatedAt)
			d.ACLs = append(d.ACLs, a)
		}
		return nil
	}, func(d *config.Document, v *view) any {
		return aclList(d, v, fid, page{page: 1, size: len(d.ACLs) + 1, order: "created_at_asc"})
	})
}

type routeRequest struct {
	FrontendID string             `json:"frontend_id"`
	BackendID  string             `json:"backend_id"`
	Match      *config.RouteMatch `json:"match"`
}

type updateRouteRequest struct {
	BackendID string             `json:"backend_id"`
	Match     *config.RouteMatch `json:"match"`
}

func (h *Handler) listRoutes(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r, "created_at_asc", "created_at_desc")
	if err != nil {
		return 0, nil, err
	}
	fid := r.URL.Query().Get("frontend_id")
	p.name = ""
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		routes := []config.Route{}
		for _, rt := range d.Routes {
			if fid == "" || rt.FrontendID == fid {
				routes = append(routes, rt)
			}
		}
		out, total := list(p, routes, func(config.Route) string { return "" }, func(rt config.Route) *time.Time { return rt.CreatedAt })
		return map[string]any{"routes": out, "total_count": total}, nil
	})
}

func (h *Handler) getRoute(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("route_id")
		rt := findRoute(d, id)
		if rt == nil {
			return nil, notFound("route", id)
		}
		return rt, nil
	})
}

func showRoute(id string) func(*config.Document, *view) any {
	return func(d *config.Document, v *view) any { return findRoute(d, id) }
}

func (h *Handler) createRoute(r *http.Request, at where) (int, any, error) {
	var req routeRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := newID()
	return h.write(r, at, func(d *config.Document) error {
		rt := config.Route{ID: id, FrontendID: req.FrontendID, BackendID: req.BackendID, Match: req.Match}
		touch(&rt.CreatedAt, &rt.UpdatedAt)
		d.Routes = append(d.Routes, rt)
		return nil
	}, showRoute(id))
}

func (h *Handler) updateRoute(r *http.Request, at where) (int, any, error) {
	var req updateRouteRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("route_id")
	return h.write(r, at, func(d *config.Document) error {
		rt := findRoute(d, id)
		if rt == nil {
			return notFound("route", id)
		}
		rt.BackendID, rt.Match = req.BackendID, req.Match
		touch(&rt.CreatedAt, &rt.UpdatedAt)
		return nil
	}, showRoute(id))
}

func (h *Handler) deleteRoute(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("route_id")
	return h.write(r, at, func(d *config.Document) error {
		if findRoute(d, id) == nil {
			return notFound("route", id)
		}
		d.Routes = deleteByID(d.Routes, id, func(rt *config.Route) string { return rt.ID })
		return nil
	}, nil)
}

type createCertificateRequest struct {
	Name              string              `json:"name"`
	Letsencrypt       *config.Letsencrypt `json:"letsencrypt"`
	CustomCertificate *struct {
		CertificateChain string `json:"certificate_chain"`
	} `json:"custom_certificate"`
}

type updateCertificateRequest struct {
	Name string `json:"name"`
}

func (h *Handler) listCertificates(r *http.Request, at where) (int, any, error) {
	return h.listOnLB(r, at, func(d *config.Document, v *view, p page) any {
		page, total := list(p, d.Certificates, func(c config.Certificate) string { return c.Name }, func(c config.Certificate) *time.Time { return c.CreatedAt })
		return map[string]any{"certificates": viewsOf(page, v.certificate), "total_count": total}
	})
}

func (h *Handler) getCertificate(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("certificate_id")
		c := findCertificate(d, id)
		if c == nil {
			return nil, notFound("certificate", id)
		}
		return v.certificate(c), nil
	})
}

func showCertificate(id string) func(*config.Document, *view) any {
	return func(d *config.Document, v *view) any { return v.certificate(findCertificate(d, id)) }
}

// createCertificate stores a custom certificate (its PEM chain and key,
// never returned) or asks for one from Let's Encrypt (status pending until
// the runtime has it).
func (h *Handler) createCertificate(r *http.Request, at where) (int, any, error) {
	var req createCertificateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := newID()
	c := config.Certificate{ID: id, Name: req.Name}
	switch {
	case (req.Letsencrypt == nil) == (req.CustomCertificate == nil):
		return 0, nil, invalidArg("custom_certificate", "constraint", "set exactly one of letsencrypt and custom_certificate")
	case req.CustomCertificate != nil:
		c.Type, c.CertificateChain = config.CertificateCustom, req.CustomCertificate.CertificateChain
		if err := c.Inspect(); err != nil {
			return 0, nil, invalidArg("custom_certificate.certificate_chain", "constraint", "%v", err)
		}
	default:
		c.Type, c.Letsencrypt, c.Status = config.CertificateLetsencrypt, req.Letsencrypt, config.CertificatePending
		c.CommonName, c.SubjectAlternativeName = req.Letsencrypt.CommonName, req.Letsencrypt.SubjectAlternativeName
	}
	if c.Name == "" {
		c.Name = c.CommonName
	}
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		touch(&c.CreatedAt, &c.UpdatedAt)
		d.Certificates = append(d.Certificates, c)
		return nil
	}, showCertificate(id))
}

func (h *Handler) updateCertificate(r *http.Request, at where) (int, any, error) {
	var req updateCertificateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("certificate_id")
	return h.write(r, at, func(d *config.Document) error {
		c := findCertificate(d, id)
		if c == nil {
			return notFound("certificate", id)
		}
		c.Name = req.Name
		touch(&c.CreatedAt, &c.UpdatedAt)
		return nil
	}, showCertificate(id))
}

func (h *Handler) deleteCertificate(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("certificate_id")
	return h.write(r, at, func(d *config.Document) error {
		if findCertificate(d, id) == nil {
			return notFound("certificate", id)
		}
		for _, f := range d.Frontends {
			if slices.Contains(f.CertificateIDs, id) {
				return stillInUse("frontend %s uses certificate %s: remove it from the frontend first", f.ID, id)
			}
		}
		d.Certificates = deleteByID(d.Certificates, id, func(c *config.Certificate) string { return c.ID })
		return nil
	}, nil)
}
