package api

import (
	"net/http"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// endpoint serves one request: it returns the status and body of a
// success, or an error that fail turns into the API's error body.
type endpoint func(r *http.Request, at where) (int, any, error)

// routes registers every endpoint under both the zoned and the regional
// prefixes.
func (h *Handler) routes() {
	h.mux = http.NewServeMux()
	add := func(method, path string, e endpoint, rename map[string]string) {
		for _, prefix := range []string{"/lb/v1/zones/{zone}", "/lb/v1/regions/{region}"} {
			h.mux.HandleFunc(method+" "+prefix+path, func(w http.ResponseWriter, r *http.Request) {
				at := where{Zone: r.PathValue("zone")}
				if region := r.PathValue("region"); region != "" {
					at = where{Region: &region}
				}
				status, body, err := e(r, at)
				if err != nil {
					h.fail(w, r, err, rename)
					return
				}
				if body == nil {
					w.WriteHeader(status)
					return
				}
				writeJSON(w, status, body)
			})
		}
	}
	backendNames := map[string]string{"backend.pool": "server_ip"}
	certNames := map[string]string{"certificate.certificate_chain": "custom_certificate.certificate_chain"}

	add("GET", "/lbs", h.listLBs, nil)
	add("POST", "/lbs", h.refuseLB("create"), nil)
	add("GET", "/lbs/{lb_id}", h.getLB, nil)
	add("PUT", "/lbs/{lb_id}", h.updateLB, nil)
	add("DELETE", "/lbs/{lb_id}", h.refuseLB("delete"), nil)
	add("POST", "/lbs/{lb_id}/migrate", h.refuseLB("migrate"), nil)
	add("GET", "/lb-types", h.listLBTypes, nil)
	add("GET", "/ips", h.listIPs, nil)
	add("GET", "/ips/{ip_id}", h.getIP, nil)

	add("GET", "/lbs/{lb_id}/backends", h.listBackends, nil)
	add("POST", "/lbs/{lb_id}/backends", h.createBackend, backendNames)
	add("GET", "/backends/{backend_id}", h.getBackend, nil)
	add("PUT", "/backends/{backend_id}", h.updateBackend, backendNames)
	add("DELETE", "/backends/{backend_id}", h.deleteBackend, nil)
	add("POST", "/backends/{backend_id}/servers", h.servers(addServers), backendNames)
	add("DELETE", "/backends/{backend_id}/servers", h.servers(removeServers), backendNames)
	add("PUT", "/backends/{backend_id}/servers", h.servers(setServers), backendNames)
	add("PUT", "/backends/{backend_id}/healthcheck", h.updateHealthCheck, nil)
	add("PUT", "/backends/{backend_id}/servers/{ip}/state", h.setServerState, nil)
	add("PUT", "/backends/{backend_id}/servers/{ip}/weight", h.setServerWeight, nil)

	add("GET", "/lbs/{lb_id}/frontends", h.listFrontends, nil)
	add("POST", "/lbs/{lb_id}/frontends", h.createFrontend, nil)
	add("GET", "/frontends/{frontend_id}", h.getFrontend, nil)
	add("PUT", "/frontends/{frontend_id}", h.updateFrontend, nil)
	add("DELETE", "/frontends/{frontend_id}", h.deleteFrontend, nil)

	add("GET", "/frontends/{frontend_id}/acls", h.listACLs, nil)
	add("POST", "/frontends/{frontend_id}/acls", h.createACL, nil)
	add("PUT", "/frontends/{frontend_id}/acls", h.setACLs, nil)
	add("GET", "/acls/{acl_id}", h.getACL, nil)
	add("PUT", "/acls/{acl_id}", h.updateACL, nil)
	add("DELETE", "/acls/{acl_id}", h.deleteACL, nil)

	add("GET", "/routes", h.listRoutes, nil)
	add("POST", "/routes", h.createRoute, nil)
	add("GET", "/routes/{route_id}", h.getRoute, nil)
	add("PUT", "/routes/{route_id}", h.updateRoute, nil)
	add("DELETE", "/routes/{route_id}", h.deleteRoute, nil)

	add("GET", "/lbs/{lb_id}/certificates", h.listCertificates, nil)
	add("POST", "/lbs/{lb_id}/certificates", h.createCertificate, certNames)
	add("GET", "/certificates/{certificate_id}", h.getCertificate, nil)
	add("PUT", "/certificates/{certificate_id}", h.updateCertificate, nil)
	add("DELETE", "/certificates/{certificate_id}", h.deleteCertificate, nil)

	add("GET", "/lbs/{lb_id}/backend-stats", h.listBackendStats, nil)
	add("GET", "/lbs/{lb_id}/stats", h.getLBStats, nil)

	add("GET", "/subscribers", h.listSubscribers, nil)
	add("POST", "/subscribers", h.createSubscriber, nil)
	add("GET", "/subscribers/{subscriber_id}", h.getSubscriber, nil)
	add("PUT", "/subscribers/{subscriber_id}", h.updateSubscriber, nil)
	add("DELETE", "/subscribers/{subscriber_id}", h.deleteSubscriber, nil)
	add("POST", "/lb/{lb_id}/subscribe", h.subscribe, nil)
	add("POST", "/lbs/{lb_id}/subscribe", h.subscribe, nil)
	add("DELETE", "/lbs/{lb_id}/unsubscribe", h.unsubscribe, nil)
	// DELETE lb/subscription/{id} (lb/subscriber/{id} in the regional
	// API) and DELETE lb/{lb_id}/unsubscribe share one pattern: ServeMux
	// cannot tell them apart.
	add("DELETE", "/lb/{a}/{b}", func(r *http.Request, at where) (int, any, error) {
		a, b := r.PathValue("a"), r.PathValue("b")
		switch {
		case a == "subscription" || a == "subscriber":
			r.SetPathValue("subscriber_id", b)
			return h.deleteSubscriber(r, at)
		case b == "unsubscribe":
			r.SetPathValue("lb_id", a)
			return h.unsubscribe(r, at)
		}
		return 0, nil, notFound("lb", a)
	}, nil)
}

// read runs fn over the running document and the view of this request.
func (h *Handler) read(r *http.Request, at where, fn func(d *config.Document, v *view) (any, error)) (int, any, error) {
	d, err := h.current()
	if err != nil {
		return 0, nil, err
	}
	body, err := fn(d, &view{doc: d, at: at, ips: h.IPs, certs: h.Certificates})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

// write runs edit in one Manager.Update and renders the result with show.
func (h *Handler) write(r *http.Request, at where, edit func(d *config.Document) error, show func(d *config.Document, v *view) any) (int, any, error) {
	d, err := h.update(r.Context(), edit)
	if err != nil {
		return 0, nil, err
	}
	if show == nil {
		return http.StatusNoContent, nil, nil
	}
	return http.StatusOK, show(d, &view{doc: d, at: at, ips: h.IPs, certs: h.Certificates}), nil
}

// checkLB answers 404 unless id is the load balancer's.
func checkLB(d *config.Document, id string) error {
	if id != lbID(d) {
		return notFound("lb", id)
	}
	return nil
}

func touch(created, updated **time.Time) {
	t := now()
	if *created == nil {
		*created = t
	}
	*updated = t
}
