package http3

import (
	"net/http"
	"strconv"
	"time"
)

// DefaultAltSvcMaxAge is how long clients remember an Alt-Svc announcement
// when AltSvc is given no max age.
const DefaultAltSvcMaxAge = 24 * time.Hour

// AltSvc returns a handler that announces HTTP/3 on UDP port to the clients
// of h: it adds `Alt-Svc: h3=":PORT"; ma=SECONDS` to the responses to
// requests that came over TLS with HTTP/1.1 or HTTP/2, then calls h.
// Requests in clear or over HTTP/3 get no header. A non-positive maxAge
// means DefaultAltSvcMaxAge. Wrap the handler of the TLS frontend whose
// port serves HTTP/3; the header is set before h runs, so h (or the server
// behind a proxy) can still add its own.
func AltSvc(port int, maxAge time.Duration, h http.Handler) http.Handler {
	if maxAge <= 0 {
		maxAge = DefaultAltSvcMaxAge
	}
	value := []string{`h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.FormatInt(int64(maxAge/time.Second), 10)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && r.ProtoMajor < 3 {
			w.Header()["Alt-Svc"] = value
		}
		h.ServeHTTP(w, r)
	})
}
