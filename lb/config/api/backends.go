package api

import (
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// backendFields are the fields of CreateBackend and UpdateBackend.
type backendFields struct {
	Name                     string                    `json:"name"`
	ForwardProtocol          config.Protocol           `json:"forward_protocol"`
	ForwardPort              int32                     `json:"forward_port"`
	ForwardPortAlgorithm     config.Algorithm          `json:"forward_port_algorithm"`
	StickySessions           config.StickySessions     `json:"sticky_sessions"`
	StickySessionsCookieName string                    `json:"sticky_sessions_cookie_name"`
	SendProxyV2              *bool                     `json:"send_proxy_v2"`
	TimeoutServer            *config.Millis            `json:"timeout_server"`
	TimeoutConnect           *config.Millis            `json:"timeout_connect"`
	TimeoutTunnel            *config.Millis            `json:"timeout_tunnel"`
	OnMarkedDownAction       config.OnMarkedDownAction `json:"on_marked_down_action"`
	ProxyProtocol            config.ProxyProtocol      `json:"proxy_protocol"`
	FailoverHost             *string                   `json:"failover_host"`
	SSLBridging              *bool                     `json:"ssl_bridging"`
	IgnoreSSLServerVerify    *bool                     `json:"ignore_ssl_server_verify"`
	RedispatchAttemptCount   *int32                    `json:"redispatch_attempt_count"`
	MaxRetries               *int32                    `json:"max_retries"`
	MaxConnections           *int32                    `json:"max_connections"`
	TimeoutQueue             *config.Duration          `json:"timeout_queue"`
	Host                     *string                   `json:"host"`
	Lbkit                    *config.BackendExtensions `json:"lbkit"`
}

type createBackendRequest struct {
	backendFields
	HealthCheck *config.HealthCheck `json:"health_check"`
	ServerIP    []string            `json:"server_ip"`
}

// apply sets b's fields from f; the lbkit object stays when f has none.
func (f *backendFields) apply(b *config.Backend) {
	b.Name, b.ForwardProtocol, b.ForwardPort = f.Name, f.ForwardProtocol, f.ForwardPort
	b.ForwardPortAlgorithm, b.StickySessions, b.StickySessionsCookieName = f.ForwardPortAlgorithm, f.StickySessions, f.StickySessionsCookieName
	b.SendProxyV2, b.TimeoutServer, b.TimeoutConnect, b.TimeoutTunnel = f.SendProxyV2, f.TimeoutServer, f.TimeoutConnect, f.TimeoutTunnel
	b.OnMarkedDownAction, b.ProxyProtocol, b.FailoverHost = f.OnMarkedDownAction, f.ProxyProtocol, f.FailoverHost
	b.SSLBridging, b.IgnoreSSLServerVerify = f.SSLBridging, f.IgnoreSSLServerVerify
	b.RedispatchAttemptCount, b.MaxRetries, b.MaxConnections = f.RedispatchAttemptCount, f.MaxRetries, f.MaxConnections
	b.TimeoutQueue, b.Host = f.TimeoutQueue, f.Host
	if f.Lbkit != nil {
		b.Lbkit = f.Lbkit
	}
}

func (h *Handler) listBackends(r *http.Request, at where) (int, any, error) {
	return h.listOnLB(r, at, func(d *config.Document, v *view, p page) any {
		page, total := list(p, d.Backends, func(b config.Backend) string { return b.Name }, func(b config.Backend) *time.Time { return b.CreatedAt })
		return map[string]any{"backends": viewsOf(page, v.backend), "total_count": total}
	})
}

func (h *Handler) getBackend(r *http.Request, at where) (int, any, error) {
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		id := r.PathValue("backend_id")
		b := findBackend(d, id)
		if b == nil {
			return nil, notFound("backend", id)
		}
		return v.backend(b), nil
	})
}

func (h *Handler) showBackend(id string) func(*config.Document, *view) any {
	return func(d *config.Document, v *view) any { return v.backend(findBackend(d, id)) }
}

func (h *Handler) createBackend(r *http.Request, at where) (int, any, error) {
	var req createBackendRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := newID()
	return h.write(r, at, func(d *config.Document) error {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return err
		}
		b := config.Backend{ID: id, HealthCheck: req.HealthCheck, Pool: req.ServerIP}
		req.apply(&b)
		touch(&b.CreatedAt, &b.UpdatedAt)
		d.Backends = append(d.Backends, b)
		return nil
	}, h.showBackend(id))
}

func (h *Handler) updateBackend(r *http.Request, at where) (int, any, error) {
	var req backendFields
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("backend_id")
	return h.write(r, at, func(d *config.Document) error {
		b := findBackend(d, id)
		if b == nil {
			return notFound("backend", id)
		}
		req.apply(b)
		touch(&b.CreatedAt, &b.UpdatedAt)
		return nil
	}, h.showBackend(id))
}

func (h *Handler) deleteBackend(r *http.Request, at where) (int, any, error) {
	id := r.PathValue("backend_id")
	return h.write(r, at, func(d *config.Document) error {
		if findBackend(d, id) == nil {
			return notFound("backend", id)
		}
		for _, f := range d.Frontends {
			if f.BackendID == id {
				return stillInUse("frontend %s uses backend %s: delete it or point it at another backend first", f.ID, id)
			}
		}
		for _, rt := range d.Routes {
			if rt.BackendID == id {
				return stillInUse("route %s uses backend %s: delete it first", rt.ID, id)
			}
		}
		d.Backends = deleteByID(d.Backends, id, func(b *config.Backend) string { return b.ID })
		return nil
	}, nil)
}

type serversRequest struct {
	ServerIP []string `json:"server_ip"`
}

func addServers(pool, ips []string) []string {
	for _, ip := range ips {
		if !slices.ContainsFunc(pool, func(p string) bool { return sameIP(p, ip) }) {
			pool = append(pool, ip)
		}
	}
	return pool
}

func removeServers(pool, ips []string) []string {
	return slices.DeleteFunc(pool, func(p string) bool {
		return slices.ContainsFunc(ips, func(ip string) bool { return sameIP(p, ip) })
	})
}

func setServers(_, ips []string) []string { return ips }

// servers serves AddBackendServers, RemoveBackendServers and
// SetBackendServers: change computes the new pool.
func (h *Handler) servers(change func(pool, ips []string) []string) endpoint {
	return func(r *http.Request, at where) (int, any, error) {
		var req serversRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		id := r.PathValue("backend_id")
		return h.write(r, at, func(d *config.Document) error {
			b := findBackend(d, id)
			if b == nil {
				return notFound("backend", id)
			}
			b.Pool = change(slices.Clone(b.Pool), req.ServerIP)
			if b.Pool == nil {
				b.Pool = []string{}
			}
			touch(&b.CreatedAt, &b.UpdatedAt)
			pruneServers(b)
			return nil
		}, h.showBackend(id))
	}
}

// pruneServers drops the lbkit settings of servers no longer in the pool.
// Only the servers endpoints, which change the pool, prune: a create or
// update that names a server outside the pool in lbkit.servers is refused
// by validation (400), not silently corrected.
func pruneServers(b *config.Backend) {
	if b.Lbkit == nil {
		return
	}
	b.Lbkit.Servers = slices.DeleteFunc(b.Lbkit.Servers, func(s config.ServerExtension) bool {
		return !slices.ContainsFunc(b.Pool, func(p string) bool { return sameIP(p, s.IP) })
	})
}

func (h *Handler) updateHealthCheck(r *http.Request, at where) (int, any, error) {
	var req config.HealthCheck
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("backend_id")
	return h.write(r, at, func(d *config.Document) error {
		b := findBackend(d, id)
		if b == nil {
			return notFound("backend", id)
		}
		b.HealthCheck = &req
		touch(&b.CreatedAt, &b.UpdatedAt)
		return nil
	}, func(d *config.Document, v *view) any { return findBackend(d, id).HealthCheck })
}

// serverSettings returns the lbkit settings of server ip of b, adding
// them when absent, or a 404 when ip is not in the pool.
func serverSettings(b *config.Backend, ip string) (*config.ServerExtension, error) {
	i := slices.IndexFunc(b.Pool, func(p string) bool { return sameIP(p, ip) })
	if i < 0 {
		return nil, notFound("backend_server", ip)
	}
	if b.Lbkit == nil {
		b.Lbkit = &config.BackendExtensions{}
	}
	for j := range b.Lbkit.Servers {
		if sameIP(b.Lbkit.Servers[j].IP, ip) {
			return &b.Lbkit.Servers[j], nil
		}
	}
	b.Lbkit.Servers = append(b.Lbkit.Servers, config.ServerExtension{IP: b.Pool[i]})
	return &b.Lbkit.Servers[len(b.Lbkit.Servers)-1], nil
}

type stateRequest struct {
	AdminState config.AdminState `json:"admin_state"`
}

type weightRequest struct {
	Weight *int32 `json:"weight"`
}

// setServerState sets one server's runtime state (ready, drain, maint),
// stored in the backend's lbkit.servers.
func (h *Handler) setServerState(r *http.Request, at where) (int, any, error) {
	var req stateRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.AdminState == "" || !req.AdminState.Valid() {
		return 0, nil, invalidArg("admin_state", "constraint", "must be one of ready, drain and maint")
	}
	return h.serverSetting(r, at, func(s *config.ServerExtension) { s.AdminState = req.AdminState })
}

// setServerWeight sets one server's weight (0 to 256), stored in the
// backend's lbkit.servers.
func (h *Handler) setServerWeight(r *http.Request, at where) (int, any, error) {
	var req weightRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Weight == nil {
		return 0, nil, invalidArg("weight", "required", "a weight from 0 to 256")
	}
	return h.serverSetting(r, at, func(s *config.ServerExtension) { s.Weight = req.Weight })
}

func (h *Handler) serverSetting(r *http.Request, at where, set func(*config.ServerExtension)) (int, any, error) {
	id, ip := r.PathValue("backend_id"), r.PathValue("ip")
	if _, err := netip.ParseAddr(ip); err != nil {
		return 0, nil, invalidArg("ip", "format", "%q is not an IP address", ip)
	}
	return h.write(r, at, func(d *config.Document) error {
		b := findBackend(d, id)
		if b == nil {
			return notFound("backend", id)
		}
		s, err := serverSettings(b, ip)
		if err != nil {
			return err
		}
		set(s)
		touch(&b.CreatedAt, &b.UpdatedAt)
		return nil
	}, h.showBackend(id))
}
