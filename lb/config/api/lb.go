package api

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

func (h *Handler) refuseLB(what string) endpoint {
	return func(r *http.Request, at where) (int, any, error) {
		return 0, nil, notImplemented("lbkit serves one load balancer, the one this process runs: it cannot %s load balancers; start or stop a process instead", what)
	}
}

func (h *Handler) listLBs(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		lbs, total := list(p, []*lbView{v.lb()}, func(l *lbView) string { return l.Name }, func(l *lbView) *time.Time { return l.CreatedAt })
		return map[string]any{"lbs": lbs, "total_count": total}, nil
	})
}

func (h *Handler) getLB(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return nil, err
		}
		return v.lb(), nil
	})
}

type updateLBRequest struct {
	Name                  string                       `json:"name"`
	Description           string                       `json:"description"`
	Tags                  []string                     `json:"tags"`
	SSLCompatibilityLevel config.SSLCompatibilityLevel `json:"ssl_compatibility_level"`
}

func (h *Handler) updateLB(r *http.Request, at where) (int, any, error) {
	var req updateLBRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if !req.SSLCompatibilityLevel.Valid() {
		return 0, nil, invalidArg("ssl_compatibility_level", "constraint", "unknown value %q", req.SSLCompatibilityLevel)
	}
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		d.LB.Name, d.LB.Description, d.LB.Tags = req.Name, req.Description, req.Tags
		d.LB.SSLCompatibilityLevel = req.SSLCompatibilityLevel
		touch(&d.LB.CreatedAt, &d.LB.UpdatedAt)
		return nil
	}, func(d *config.Document, v *view) any { return v.lb() })
}

// listLBTypes lists the one offer: lbkit itself, with no bandwidth cap
// of its own and servers anywhere (multicloud).
func (h *Handler) listLBTypes(r *http.Request, at where) (int, any, error) {
	t := map[string]any{"name": "lbkit", "stock_status": "available", "bandwidth": 0, "multicloud": true,
		"description": "lbkit: one process, the limits of its host", "zone": at.Zone}
	if at.Region != nil {
		t["region"] = *at.Region
	}
	return http.StatusOK, map[string]any{"lb_types": []any{t}, "total_count": 1}, nil
}

func (h *Handler) listIPs(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	want := r.URL.Query().Get("ip_address")
	ipType := r.URL.Query().Get("ip_type")
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		var ips []ipView
		for _, a := range h.IPs {
			if (want != "" && a.String() != want) || (ipType == "ipv4" && !a.Is4()) || (ipType == "ipv6" && !a.Is6()) {
				continue
			}
			ips = append(ips, v.ip(a))
		}
		p.order = ""
		out, total := list(p, ips, func(ipView) string { return "" }, func(ipView) *time.Time { return nil })
		return map[string]any{"ips": out, "total_count": total}, nil
	})
}

func (h *Handler) getIP(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("ip_id")
		for _, a := range h.IPs {
			if ipID(a) == id {
				return v.ip(a), nil
			}
		}
		return nil, notFound("ip", id)
	})
}

// serverStats lists the servers of backends (all of d's when id is
// empty) as the stats source reports them.
func (h *Handler) serverStats(d *config.Document, id string) ([]serverStatView, error) {
	var out []serverStatView
	for i := range d.Backends {
		b := &d.Backends[i]
		if id != "" && b.ID != id {
			continue
		}
		var stats []config.ServerStat
		var err error
		if h.Stats != nil {
			stats, err = h.Stats.ServerStats(b.ID)
		}
		if h.Stats == nil || err != nil {
			stats = nil
			for _, ip := range b.Pool {
				stats = append(stats, config.ServerStat{BackendID: b.ID, IP: ip, ServerState: "stopped",
					LastHealthCheckStatus: "unknown", Weight: 1, AdminState: config.AdminReady})
			}
		}
		for _, s := range stats {
			out = append(out, serverStatView{InstanceID: lbID(d), ServerStat: s})
		}
	}
	if id != "" && findBackend(d, id) == nil {
		return nil, notFound("backend", id)
	}
	return out, nil
}

func (h *Handler) listBackendStats(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return nil, err
		}
		stats, err := h.serverStats(d, r.URL.Query().Get("backend_id"))
		if err != nil {
			return nil, err
		}
		p.order, p.name = "", ""
		out, total := list(p, stats, func(serverStatView) string { return "" }, func(serverStatView) *time.Time { return nil })
		return map[string]any{"backend_servers_stats": out, "total_count": total}, nil
	})
}

func (h *Handler) getLBStats(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return nil, err
		}
		stats, err := h.serverStats(d, r.URL.Query().Get("backend_id"))
		if err != nil {
			return nil, err
		}
		if stats == nil {
			stats = []serverStatView{}
		}
		return map[string]any{"backend_servers_stats": stats}, nil
	})
}

type subscriberRequest struct {
	Name           string                          `json:"name"`
	EmailConfig    *config.SubscriberEmailConfig   `json:"email_config"`
	WebhookConfig  *config.SubscriberWebhookConfig `json:"webhook_config"`
	OrganizationID *string                         `json:"organization_id"`
	ProjectID      *string                         `json:"project_id"`
}

func (h *Handler) listSubscribers(r *http.Request, at where) (int, any, error) {
	p, err := parsePage(r, "created_at_asc", "created_at_desc", "name_asc", "name_desc")
	if err != nil {
		return 0, nil, err
	}
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		// Subscribers have no dates: created_at orders keep the stored order.
		out, total := list(p, d.Subscribers, func(s config.Subscriber) string { return s.Name }, func(config.Subscriber) *time.Time { return nil })
		return map[string]any{"subscribers": out, "total_count": total}, nil
	})
}

func (h *Handler) getSubscriber(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("subscriber_id")
		s := findSubscriber(d, id)
		if s == nil {
			return nil, notFound("subscriber", id)
		}
		return s, nil
	})
}

func (h *Handler) createSubscriber(r *http.Request, at where) (int, any, error) {
	var req subscriberRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := newID()
	return h.write(r, at, func(d *config.Document) error {
		d.Subscribers = append(d.Subscribers, config.Subscriber{ID: id, Name: req.Name, EmailConfig: req.EmailConfig, WebhookConfig: req.WebhookConfig})
		return nil
	}, func(d *config.Document, v *view) any { return findSubscriber(d, id) })
}

func (h *Handler) updateSubscriber(r *http.Request, at where) (int, any, error) {
	var req subscriberRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("subscriber_id")
	return h.write(r, at, func(d *config.Document) error {
		s := findSubscriber(d, id)
		if s == nil {
			return notFound("subscriber", id)
		}
		*s = config.Subscriber{ID: id, Name: req.Name, EmailConfig: req.EmailConfig, WebhookConfig: req.WebhookConfig}
		return nil
	}, func(d *config.Document, v *view) any { return findSubscriber(d, id) })
}

func (h *Handler) deleteSubscriber(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("subscriber_id")
	return h.write(r, at, func(d *config.Document) error {
		if findSubscriber(d, id) == nil {
			return notFound("subscriber", id)
		}
		if d.LB.SubscriberID == id {
			return stillInUse("the load balancer is subscribed to %s: unsubscribe it first", id)
		}
		d.Subscribers = deleteByID(d.Subscribers, id, func(s *config.Subscriber) string { return s.ID })
		return nil
	}, nil)
}

type subscribeRequest struct {
	SubscriberID string `json:"subscriber_id"`
}

func (h *Handler) subscribe(r *http.Request, at where) (int, any, error) {
	var req subscribeRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		if findSubscriber(d, req.SubscriberID) == nil {
			return invalidArg("subscriber_id", "unknown", "no subscriber %q", req.SubscriberID)
		}
		d.LB.SubscriberID = req.SubscriberID
		touch(&d.LB.CreatedAt, &d.LB.UpdatedAt)
		return nil
	}, func(d *config.Document, v *view) any { return v.lb() })
}

func (h *Handler) unsubscribe(r *http.Request, at where) (int, any, error) {
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		d.LB.SubscriberID = ""
		touch(&d.LB.CreatedAt, &d.LB.UpdatedAt)
		return nil
	}, func(d *config.Document, v *view) any { return v.lb() })
}

func deleteByID[T any](items []T, id string, idOf func(*T) string) []T {
	out := items[:0]
	for i := range items {
		if idOf(&items[i]) != id {
			out = append(out, items[i])
		}
	}
	return out
}

// sameIP reports whether a and b are the same address, whatever their
// spelling.
func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return x.Unmap() == y.Unmap()
}
