package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb/config"
)

// MaxBodyBytes bounds a request body; a larger one is refused with 413.
const MaxBodyBytes = 1 << 20

// DefaultLBID is the load balancer's id when the document has none; the
// first write stores it.
const DefaultLBID = "00000000-0000-4000-8000-000000000001"

// StatsSource reports the state of a backend's servers (the runtime's
// ServerStats). ServerStats returns an error for a backend it does not run.
type StatsSource interface {
	ServerStats(backendID string) ([]config.ServerStat, error)
}

// CertificateSource reports a certificate as the running load balancer
// has it: status (pending, ready, error with status_details), common name,
// alternative names, fingerprint and validity. The chain is not used.
type CertificateSource interface {
	Certificate(id string) (config.Certificate, bool)
}

// Handler serves the REST API over a config.Manager. Set its fields before
// the first request and do not change them after; it is safe for
// concurrent use. Reads answer from Manager.Current; every write is one
// Manager.Update, so writes are serialised, validated as a whole document,
// applied, then stored, and a refused write changes nothing.
type Handler struct {
	// Manager holds the running document. Required, and started: a
	// Handler over a manager that is not started answers 503.
	Manager *config.Manager
	// Stats reports server states for backend-stats and stats (nil:
	// every server is reported "stopped" with health "unknown").
	Stats StatsSource
	// Certificates reports the certificates in use (the runtime's
	// Certificate): a Let's Encrypt certificate's status, names and
	// validity come from it. Nil: the document's values (pending until
	// then).
	Certificates CertificateSource
	// IPs are the load balancer's addresses, listed as its IPs.
	IPs []netip.Addr
	// Token is the secret every request must carry in X-Auth-Token. A
	// request without the header is refused with 401; one with another
	// token, or any request while Token is empty, with 403: the API is
	// never open.
	Token string
	// Logger receives refused writes at Debug and failures at Error
	// (default slog.Default()).
	Logger *slog.Logger

	once      sync.Once
	mux       *http.ServeMux
	tokenHash [sha256.Size]byte // of Token, computed once
}

// ServeHTTP authenticates the request and routes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		h.tokenHash = sha256.Sum256([]byte(h.Token))
		h.routes()
	})
	w.Header().Set("Cache-Control", "no-store")
	if !h.authenticate(w, r) {
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// ServeMux would answer 404 or 405 in plain text; the API
		// answers in its own shape.
		h.fail(w, r, h.unrouted(w, r), nil)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// unrouted is the error of a request no endpoint serves: 405 when the
// path exists with another method (with the Allow header listing the
// methods it has, RFC 9110 section 15.5.6), else 404.
func (h *Handler) unrouted(w http.ResponseWriter, r *http.Request) *apiError {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		if slices.Contains(allow, "GET") {
			allow = slices.Insert(allow, 1, "HEAD")
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return &apiError{http.StatusMethodNotAllowed, map[string]any{
			"type": "method_not_allowed", "message": r.Method + " is not allowed on " + r.URL.Path}}
	}
	return &apiError{http.StatusNotFound, map[string]any{
		"type": "not_found", "message": "no such endpoint: " + r.Method + " " + r.URL.Path}}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// authenticate answers 401 to a request without X-Auth-Token (or an empty
// one) and 403 to one with another token than the secret, or to every
// request when no secret is configured; the comparison takes the same time
// whatever the token sent. The bodies are those the API's clients know:
// denied_authentication with reason invalid_argument ("invalid API key
// format or empty value"), and permissions_denied naming the action the
// method needed (read for GET and HEAD, write otherwise).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) bool {
	got, sent := r.Header["X-Auth-Token"]
	if !sent || len(got) == 0 || got[0] == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"type": "denied_authentication", "method": "api_key", "reason": "invalid_argument",
			"message": "authentication is denied: send the API token in X-Auth-Token",
		})
		return false
	}
	sum := sha256.Sum256([]byte(got[0]))
	if h.Token == "" || subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) != 1 {
		msg := "insufficient permissions: wrong token"
		if h.Token == "" {
			msg = "insufficient permissions: no API token is configured"
		}
		action := "write"
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			action = "read"
		}
		writeJSON(w, http.StatusForbidden, map[string]any{
			"type": "permissions_denied", "message": msg,
			"details": []map[string]string{{"resource": "lb", "action": action}},
		})
		return false
	}
	return true
}

// An apiError is an error answered in the API's error body.
type apiError struct {
	status int
	body   map[string]any
}

func (e *apiError) Error() string { return fmt.Sprint(e.body["message"]) }

// detail is one entry of an invalid_arguments error.
type detail struct {
	ArgumentName string `json:"argument_name"`
	Reason       string `json:"reason"`
	HelpMessage  string `json:"help_message"`
}

func invalidArgs(details ...detail) *apiError {
	return &apiError{http.StatusBadRequest, map[string]any{
		"type": "invalid_arguments", "message": "invalid argument(s)", "details": details,
	}}
}

func invalidArg(name, reason, format string, args ...any) *apiError {
	return invalidArgs(detail{name, reason, fmt.Sprintf(format, args...)})
}

func notFound(resource, id string) *apiError {
	return &apiError{http.StatusNotFound, map[string]any{
		"type": "not_found", "message": "resource is not found", "resource": resource, "resource_id": id,
	}}
}

// stillInUse refuses to delete a resource that others refer to.
func stillInUse(format string, args ...any) *apiError {
	return &apiError{http.StatusConflict, map[string]any{
		"type": "precondition_failed", "precondition": "resource_still_in_use",
		"message": "precondition failed", "help_message": fmt.Sprintf(format, args...),
	}}
}

func conflict(format string, args ...any) *apiError {
	return &apiError{http.StatusConflict, map[string]any{"type": "conflict", "message": fmt.Sprintf(format, args...)}}
}

func notImplemented(format string, args ...any) *apiError {
	return &apiError{http.StatusNotImplemented, map[string]any{
		"type": "precondition_failed", "precondition": "unknown_precondition",
		"message": "not implemented", "help_message": fmt.Sprintf(format, args...),
	}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// fail answers err: an *apiError as it is, a write's error as the table
// of the package documentation says.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, rename map[string]string) {
	var ae *apiError
	var ve *config.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, map[string]any{
			"type": "invalid_request_error", "message": fmt.Sprintf("the request body is over %d bytes", mbe.Limit)}}
	case errors.As(err, &ve):
		ds := make([]detail, 0, len(ve.Fields))
		for _, f := range ve.Fields {
			name := f.Field
			if n, ok := rename[f.Resource+"."+name]; ok {
				name = n
			}
			help := f.Help
			if f.ID != "" {
				help = fmt.Sprintf("%s (%s %s)", f.Help, f.Resource, f.ID)
			}
			ds = append(ds, detail{name, f.Reason, help})
		}
		ae = invalidArgs(ds...)
	case errors.Is(err, config.ErrTooLarge):
		ae = &apiError{http.StatusRequestEntityTooLarge, map[string]any{
			"type": "invalid_request_error", "message": "the configuration would be over the store's size limit; nothing changed"}}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away during the write: nobody reads this
		// answer, and it is no failure of the server.
		h.logger().Debug("api: request cancelled by the client", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{http.StatusServiceUnavailable, map[string]any{
			"type": "unavailable", "message": "the request was cancelled before the write completed; the running configuration stays (a shared store may still have stored it, and then applies it)"}}
	case errors.Is(err, config.ErrConflict):
		ae = conflict("the stored configuration changed since this instance loaded it (an edited file: reload it with SIGHUP; a shared store: the instance reloads on its own); retry")
	case errors.Is(err, config.ErrUnavailable):
		ae = &apiError{http.StatusServiceUnavailable, map[string]any{
			"type": "unavailable", "message": "the configuration store is unavailable; nothing changed"}}
	case errors.Is(err, config.ErrApply):
		msg := "the configuration is valid but could not be applied; nothing changed: " + err.Error()
		if errors.Is(err, syscall.EADDRINUSE) {
			msg = "a port is in use by another process; nothing changed: " + err.Error()
		}
		ae = conflict("%s", msg)
	case errors.Is(err, config.ErrNotStarted):
		ae = &apiError{http.StatusServiceUnavailable, map[string]any{
			"type": "unavailable", "message": "the configuration is not loaded yet"}}
	default:
		h.logger().Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{http.StatusInternalServerError, map[string]any{"type": "internal", "message": "internal error"}}
	}
	if ae.status < 500 {
		h.logger().Debug("api: request refused", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", ae.Error())
	}
	writeJSON(w, ae.status, ae.body)
}

// current returns the running document.
func (h *Handler) current() (*config.Document, error) {
	d, _ := h.Manager.Current()
	if d == nil {
		return nil, config.ErrNotStarted
	}
	return d, nil
}

// update runs edit in one Manager.Update, stamping the load balancer's id;
// before the Manager started it fails with config.ErrNotStarted (503).
func (h *Handler) update(ctx context.Context, edit func(*config.Document) error) (*config.Document, error) {
	return h.Manager.Update(ctx, func(d *config.Document) error {
		if d.LB.ID == "" {
			d.LB.ID = DefaultLBID
		}
		return edit(d)
	})
}

func lbID(d *config.Document) string {
	if d.LB.ID == "" {
		return DefaultLBID
	}
	return d.LB.ID
}

// decode reads the request body strictly into v; an error names the field.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	err = config.DecodeStrict(bytes.NewReader(body), v)
	if err == nil {
		return nil
	}
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		// ute.Field spells embedded structs by their Go names: locate
		// gives the JSON path.
		return invalidArg(locate(body, reflect.TypeOf(v)), "format", "want a JSON %s, got %s", ute.Type, ute.Value)
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidArg("body", "format", "malformed JSON: %v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return invalidArg(name, "constraint", "not a field of this request")
	}
	return invalidArg(locate(body, reflect.TypeOf(v)), "format", "%v", err)
}

// locate names the field of body that fails to decode into t, dotted into
// nested objects, or "body".
func locate(body []byte, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return "body"
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return "body"
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ft, ok := fieldType(t, k)
		if !ok {
			return k
		}
		if json.Unmarshal(fields[k], reflect.New(ft).Interface()) == nil {
			continue
		}
		if inner := locate(fields[k], ft); inner != "body" {
			return k + "." + inner
		}
		return k
	}
	return "body"
}

func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" {
			if ft, ok := fieldType(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tag == name || (tag == "" && strings.EqualFold(f.Name, name)) {
			return f.Type, true
		}
	}
	return nil, false
}

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func now() *time.Time {
	t := time.Now().UTC().Truncate(time.Microsecond)
	return &t
}

// page is a list request's pagination and order.
type page struct {
	page, size int
	order      string
	name       string
}

// DefaultPageSize and MaxPageSize bound a list's page_size.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

func parsePage(r *http.Request, orders ...string) (page, error) {
	q := r.URL.Query()
	p := page{page: 1, size: DefaultPageSize, order: "created_at_asc", name: q.Get("name")}
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, invalidArg("page", "constraint", "must be a whole number from 1")
		}
		p.page = n
	}
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return p, invalidArg("page_size", "constraint", "must be a whole number from 1 to %d", MaxPageSize)
		}
		p.size = n
	}
	if s := q.Get("order_by"); s != "" {
		if len(orders) == 0 {
			orders = []string{"created_at_asc", "created_at_desc", "name_asc", "name_desc"}
		}
		if !slices.Contains(orders, s) {
			return p, invalidArg("order_by", "constraint", "must be one of %s", strings.Join(orders, ", "))
		}
		p.order = s
	}
	return p, nil
}

// viewsOf renders each item of a page as its API view.
func viewsOf[T, V any](items []T, view func(*T) V) []V {
	out := make([]V, len(items))
	for i := range items {
		out[i] = view(&items[i])
	}
	return out
}

// listOnLB serves a list of the load balancer's resources: it parses the
// page parameters, checks the path's lb_id and has fn render the page.
func (h *Handler) listOnLB(r *http.Request, at where, fn func(d *config.Document, v *view, p page) any) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	return h.read(r, at, func(d *config.Document, v *view) (any, error) {
		if err := checkLB(d, r.PathValue("lb_id")); err != nil {
			return nil, err
		}
		return fn(d, v, p), nil
	})
}

// list filters items by name (a substring), orders them and returns the
// requested page with the count before paging.
func list[T any](p page, items []T, name func(T) string, created func(T) *time.Time) ([]T, int) {
	out := make([]T, 0, len(items))
	for _, it := range items {
		if p.name == "" || strings.Contains(name(it), p.name) {
			out = append(out, it)
		}
	}
	ts := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	slices.SortStableFunc(out, func(a, b T) int {
		switch p.order {
		case "created_at_desc":
			return ts(created(b)).Compare(ts(created(a)))
		case "name_asc":
			return strings.Compare(name(a), name(b))
		case "name_desc":
			return strings.Compare(name(b), name(a))
		}
		return ts(created(a)).Compare(ts(created(b)))
	})
	total := len(out)
	start := min((p.page-1)*p.size, total)
	return out[start:min(start+p.size, total)], total
}
