package statuspage

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// PoolSource is what the page shows as a backend: *lb.Pool implements it.
type PoolSource interface {
	Stats() lb.PoolStats
}

// FrontendSource is what the page shows as a frontend: *lb.TCPFrontend and
// *lb.ReverseProxy implement it.
type FrontendSource interface {
	Stats() lb.FrontendStats
}

// DefaultRefresh is the refresh interval of the page when Handler.Refresh is
// zero.
const DefaultRefresh = 5 * time.Second

// minRateInterval is the shortest time between two samples of a rate.
const minRateInterval = time.Second

// Handler serves the status page (HTML) and its data (JSON, with
// ?format=json) of the sources added to it. Its exported fields are read on
// every request and must not change once it serves; the zero value shows
// nothing until sources are added. Its methods are safe for concurrent use.
// A Handler must not be copied after first use.
type Handler struct {
	// Title heads the page, after "lbkit"; empty for none.
	Title string
	// Refresh is the interval at which the page reloads itself; zero means
	// DefaultRefresh, a negative value no reloading. It is rounded up to a
	// whole second, the unit of a meta refresh.
	Refresh time.Duration
	// Logger receives the errors of writing a response; nil means
	// slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	nextID    uint64
	pools     []*source[PoolSource]
	frontends []*source[FrontendSource]
}

// source is a registered PoolSource or FrontendSource under its name, with
// the samples of the rates the Handler measures for it, guarded by
// Handler.mu.
type source[S any] struct {
	name    string
	src     S
	samples map[string]*sample
}

// sample is the total of a counter at a time, and the rate measured when it
// was taken.
type sample struct {
	at    time.Time
	total uint64
	rate  float64
}

// AddPool shows p's backend and servers on the page under name (the name
// of the backend on the page and in the JSON), after the pools added
// before; a pool added under the same name before is replaced in its place.
// This is the registration of metrics.Collector: both follow a
// configuration's pools by name.
func (h *Handler) AddPool(name string, p PoolSource) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pools = with(h.pools, &source[PoolSource]{name: name, src: p, samples: map[string]*sample{}})
}

// RemovePool takes the pool added under name off the page; it does nothing
// when there is none.
func (h *Handler) RemovePool(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pools = without(h.pools, name)
}

// AddFrontend shows f on the page under name, after the frontends added
// before; a frontend added under the same name before is replaced in its
// place.
func (h *Handler) AddFrontend(name string, f FrontendSource) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.frontends = with(h.frontends, &source[FrontendSource]{name: name, src: f, samples: map[string]*sample{}})
}

// RemoveFrontend takes the frontend added under name off the page; it does
// nothing when there is none.
func (h *Handler) RemoveFrontend(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.frontends = without(h.frontends, name)
}

// with returns list with s in the place of the source of the same name, or
// at the end, in a new slice: renderings in progress keep the old one.
func with[S any](list []*source[S], s *source[S]) []*source[S] {
	out := make([]*source[S], 0, len(list)+1)
	replaced := false
	for _, e := range list {
		if e.name == s.name {
			e, replaced = s, true
		}
		out = append(out, e)
	}
	if !replaced {
		out = append(out, s)
	}
	return out
}

// without returns list without the source named name, in a new slice.
func without[S any](list []*source[S], name string) []*source[S] {
	out := make([]*source[S], 0, len(list))
	for _, e := range list {
		if e.name != name {
			out = append(out, e)
		}
	}
	return out
}

// rate returns the rate of the counter key of a source, whose total is now
// total: the difference with the last sample, if that is at least
// minRateInterval old, else the rate measured then. seen collects the keys
// in use; h.mu is held.
func rate(samples map[string]*sample, seen map[string]bool, key string, total uint64, now time.Time) float64 {
	seen[key] = true
	s := samples[key]
	if s == nil {
		samples[key] = &sample{at: now, total: total}
		return 0
	}
	if d := now.Sub(s.at); d >= minRateInterval {
		if total >= s.total {
			s.rate = float64(total-s.total) / d.Seconds()
		} else { // a new source under the same name
			s.rate = 0
		}
		s.at, s.total = now, total
	}
	return s.rate
}

// prune forgets the samples of counters no longer shown (removed servers);
// h.mu is held.
func prune(samples map[string]*sample, seen map[string]bool) {
	for k := range samples {
		if !seen[k] {
			delete(samples, k)
		}
	}
}

// Report returns what the page shows now, as the JSON form serves it.
func (h *Handler) Report() Report {
	h.mu.Lock()
	pools, frontends := h.pools, h.frontends
	h.mu.Unlock()

	// Read the sources without the lock: a slow source delays no other
	// request's registrations.
	fs := make([]lb.FrontendStats, len(frontends))
	for i, f := range frontends {
		fs[i] = f.src.Stats()
	}
	ps := make([]lb.PoolStats, len(pools))
	for i, p := range pools {
		ps[i] = p.src.Stats()
	}
	now := time.Now()
	r := Report{Time: now, Frontends: make([]Frontend, len(fs)), Backends: make([]Backend, len(ps))}

	h.mu.Lock()
	defer h.mu.Unlock()
	for i, f := range frontends {
		seen := map[string]bool{}
		r.Frontends[i] = frontendOf(fs[i], rate(f.samples, seen, "req", fs[i].Requests, now))
		r.Frontends[i].Name = f.name
	}
	for i, p := range pools {
		seen := map[string]bool{}
		st := ps[i]
		b := backendOf(st, now)
		b.Name = p.name
		b.SessionRate = rate(p.samples, seen, "sess", st.Total, now)
		b.RequestRate = rate(p.samples, seen, "req", st.Requests, now)
		for j, s := range st.Servers {
			key := strconv.Quote(s.Name)
			b.Servers[j].SessionRate = rate(p.samples, seen, "sess "+key, s.Total, now)
			b.Servers[j].RequestRate = rate(p.samples, seen, "req "+key, s.Requests, now)
		}
		prune(p.samples, seen)
		r.Backends[i] = b
	}
	return r
}

// The security headers of every response. The page's only inline content is
// its stylesheet, allowed by hash.
var (
	styleHash = func() string {
		sum := sha256.Sum256([]byte(stylesheet))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
	contentSecurityPolicy = "default-src 'none'; style-src " + styleHash +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// ServeHTTP serves the page (GET or HEAD), or its data as JSON with the
// query parameter format=json.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	var err error
	switch format := r.URL.Query().Get("format"); format {
	case "json":
		hdr.Set("Content-Type", "application/json")
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(h.Report())
	case "", "html":
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		err = pageTemplate.Execute(&buf, page{Report: h.Report(), Title: h.Title, Refresh: h.refreshSeconds()})
	default:
		http.Error(w, "unknown format; use format=json or format=html", http.StatusBadRequest)
		return
	}
	if err != nil {
		h.logger().LogAttrs(r.Context(), slog.LevelError, "statuspage: render", slog.Any("error", err))
		http.Error(w, "statuspage: render failed", http.StatusInternalServerError)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		h.logger().LogAttrs(r.Context(), slog.LevelDebug, "statuspage: write", slog.Any("error", fmt.Errorf("statuspage: %w", err)))
	}
}

// refreshSeconds is the page's meta refresh in seconds, 0 for none.
func (h *Handler) refreshSeconds() int {
	d := h.Refresh
	switch {
	case d == 0:
		d = DefaultRefresh
	case d < 0:
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
