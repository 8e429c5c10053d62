package tlsmode

import (
	"net/http"
	"strconv"
	"time"
)

// HSTS is an HTTP Strict Transport Security policy (RFC 6797): browsers
// that see it over HTTPS use only HTTPS for the host for MaxAge. The zero
// value is off.
type HSTS struct {
	// MaxAge is how long browsers remember the policy, in whole seconds;
	// zero or less turns HSTS off. A year (8760h) is usual once HTTPS
	// works everywhere on the host.
	MaxAge time.Duration
	// IncludeSubDomains extends the policy to every subdomain.
	IncludeSubDomains bool
	// Preload consents to inclusion in the browsers' preload lists, which
	// also ask for IncludeSubDomains and a MaxAge of at least a year.
	Preload bool
	// Override replaces a Strict-Transport-Security header the server
	// sent; by default the server's own header is kept.
	Override bool
}

// String returns the header value, such as
// "max-age=31536000; includeSubDomains; preload", or "" when h is off.
func (h HSTS) String() string {
	if h.MaxAge <= 0 {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge/time.Second), 10)
	if h.IncludeSubDomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// Handler returns a handler that serves next and adds the
// Strict-Transport-Security header to the responses of requests that
// came over TLS (http.Request.TLS set); responses over plain HTTP never
// carry it, as RFC 6797 asks. When h is off it returns next itself.
func (h HSTS) Handler(next http.Handler) http.Handler {
	v := h.String()
	if v == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			next.ServeHTTP(w, r)
			return
		}
		hw := &hstsWriter{ResponseWriter: w, value: v, override: h.Override}
		next.ServeHTTP(hw, r)
		hw.set() // a handler that wrote nothing still answers 200
	})
}

// hstsWriter adds the header when the final response header is written,
// after the handler (or the server behind a proxy) has set its own.
// Unwrap lets http.ResponseController reach the connection's writer.
type hstsWriter struct {
	http.ResponseWriter
	value    string
	override bool
	done     bool
}

func (w *hstsWriter) set() {
	if w.done {
		return
	}
	w.done = true
	if h := w.Header(); w.override || h.Get("Strict-Transport-Security") == "" {
		h.Set("Strict-Transport-Security", w.value)
	}
}

func (w *hstsWriter) WriteHeader(code int) {
	if code >= 200 {
		w.set()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hstsWriter) Write(p []byte) (int, error) {
	w.set()
	return w.ResponseWriter.Write(p)
}

// Flush sets the header if it is not yet written and flushes the
// underlying writer when it can.
func (w *hstsWriter) Flush() {
	w.set()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the underlying ResponseWriter.
func (w *hstsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
