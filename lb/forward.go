package lb

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// The forwarding path.
//
// Every request that does not ask for an upgrade is forwarded by forward
// below, when FlushInterval is not positive. It does what
// httputil.ReverseProxy does in Rewrite mode (the same hop-by-hop and
// forwarding fields removed, the same query cleaning, 1xx responses forwarded,
// trailers, flushing of streamed responses, the same http.ErrAbortHandler
// panic when the copy of a response fails under a server), in fewer steps: the
// outgoing request is a shallow copy of the incoming one whose header map is
// built once, with room for the fields the proxy adds, without the hop-by-hop
// fields rather than with them deleted one by one, and sharing the incoming
// field values (which no step modifies in place); the response's header map
// becomes the client's response's under HTTPFrontend's server (without
// ModifyResponse, which could leave names in any case), and under other
// servers its fields move to the client's map without a copy of their values;
// and the outgoing request's URL, its 1xx hook and the values of the
// forwarding fields share one allocation. Upgrades (their hijacked tunnels) and
// a positive FlushInterval (its flush timer) keep httputil.ReverseProxy, which
// the proxy builds for each Pool next to the transport both paths share.

// forwarding is one request on its way to a Pool's server.
type forwarding struct {
	rw    http.ResponseWriter
	url   url.URL
	trace httptrace.ClientTrace
	mu    sync.Mutex // guards done against a late 1xx response
	done  bool       // the round trip returned: no more 1xx responses
	fwd   [4]string  // X-Forwarded-For, -Proto, -Host, -Port (setForwarded)
	one   [2]string  // User-Agent and Te values
}

// hopHeaders are the hop-by-hop request and response fields that
// httputil.ReverseProxy removes besides those the Connection field names.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// dropped reports whether the request field k is not copied to a server:
// a hop-by-hop field, or a forwarding field the proxy rebuilds.
func dropped(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// forwardable reports whether r is served by forward: it asks for no
// upgrade, and the proxy has no periodic flush.
func (p *ReverseProxy) forwardable(r *http.Request) bool {
	return p.FlushInterval <= 0 && !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade")
}

// forward sends r through rt, its Pool's transport, and copies the
// response to w.
func (p *ReverseProxy) forward(w http.ResponseWriter, r *http.Request, rt http.RoundTripper) {
	f := &forwarding{rw: w}
	f.trace.Got1xxResponse = f.got1xx
	out := r.WithContext(httptrace.WithClientTrace(r.Context(), &f.trace))
	if r.URL != nil {
		f.url = *r.URL
		out.URL = &f.url
	}
	f.url.RawQuery = cleanQuery(f.url.RawQuery)
	if r.ContentLength == 0 {
		out.Body = nil // as httputil: no body, so the request can be replayed
	}
	out.Close = false

	// The outgoing fields: the incoming ones but the hop-by-hop and
	// forwarding fields, with room for those added below.
	h := make(http.Header, len(r.Header)+6)
	for k, v := range r.Header {
		if !dropped(k) {
			h[k] = v
		}
	}
	for _, v := range r.Header["Connection"] {
		dropListed(h, v)
	}
	out.Header = h
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		f.one[1] = "trailers"
		h["Te"] = f.one[1:2:2]
	}
	p.rewrite(r, out, &f.fwd)
	if _, ok := h["User-Agent"]; !ok {
		// An empty User-Agent: no default is added by the transport.
		h["User-Agent"] = f.one[0:1:1]
	}

	res, err := rt.RoundTrip(out)
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	if err != nil {
		p.errorHandler(w, out, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		p.errorHandler(w, out, errors.New("lb: server switched protocols without an upgrade request"))
		return
	}
	removeHopByHop(res.Header)
	if err := p.modifyResponse(res); err != nil {
		res.Body.Close()
		p.errorHandler(w, out, err)
		return
	}

	dst := w.Header()
	if p.ModifyResponse == nil && len(dst) == 0 && adoptHeader(w, res.Header) {
		// The field names are canonical (both transports' parsers make
		// them so), and the client's server takes the map as it is.
		dst = res.Header
	} else {
		for k, v := range res.Header {
			k = textproto.CanonicalMIMEHeaderKey(k)
			if have, ok := dst[k]; ok {
				dst[k] = append(have, v...)
			} else {
				dst[k] = v
			}
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)

	if err := p.copyResponse(w, res, streamed(res) || p.FlushInterval < 0); err != nil {
		res.Body.Close()
		if r.Context().Value(http.ServerContextKey) != nil {
			// Under a server, which recovers it: the client's connection
			// is cut, so that the response does not look complete.
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // now, so that res.Trailer is filled in

	if len(res.Trailer) > 0 {
		// Chunked, so that the trailer can follow, even when the body
		// is short enough for a server to give it a Content-Length.
		http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// adoptHeader gives h to the ResponseWriter under w, through the proxy's
// own wrappers (which leave Header to it), when that is internal/h1's,
// which can take a response's header map as its own (AdoptHeader).
func adoptHeader(w http.ResponseWriter, h http.Header) bool {
	for {
		switch x := w.(type) {
		case *clientGuard:
			w = x.ResponseWriter
		case *accessWriter:
			w = x.ResponseWriter
		case interface{ AdoptHeader(http.Header) bool }:
			return x.AdoptHeader(h)
		default:
			return false
		}
	}
}

// got1xx forwards an informational response (103 Early Hints, 102
// Processing) to the client, until the round trip has returned.
func (f *forwarding) got1xx(code int, header textproto.MIMEHeader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return nil
	}
	h := f.rw.Header()
	for k, vv := range header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	f.rw.WriteHeader(code)
	clear(h) // WriteHeader leaves the fields of a 1xx response in place
	return nil
}

// errorHandler answers a request that failed on its way to a server, or
// whose response ModifyResponse refused.
func (p *ReverseProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNoServer) {
		p.noServer(w, r, err)
		return
	}
	p.fail(w, r, err)
}

// copyResponse copies the body of res to w, flushing after every write
// when flush is set. A flushed response's header is flushed at once too,
// so that the client gets it before the first bytes of the body arrive,
// unless those are there already (the server sent them with the header):
// they then leave with the header, in one write, which also lets the
// client's server sniff a missing Content-Type from them, as it does with
// httputil.ReverseProxy, whose flush of the header runs on a timer.
func (p *ReverseProxy) copyResponse(w http.ResponseWriter, res *http.Response, flush bool) error {
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
		if bb, ok := res.Body.(interface{ Buffered() bool }); !ok || !bb.Buffered() {
			rc.Flush()
		}
	}
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr == nil && m != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return werr
			}
			if rc != nil {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// streamed reports whether the response is a stream whose every write is
// flushed: Server-Sent Events, or a body of unknown length (chunked,
// gRPC, or ended by the server's close).
func streamed(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	ct := res.Header["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	media, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(media), "text/event-stream")
}

// removeHopByHop deletes from the header of a response the hop-by-hop
// fields: those its Connection field names, and hopHeaders.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		dropListed(h, v)
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// dropListed deletes from h the fields named in a Connection field value.
// The usual names ("close", "keep-alive", any case) need no canonical form
// to be built.
func dropListed(h http.Header, connection string) {
	for name := range strings.SplitSeq(connection, ",") {
		name = textproto.TrimString(name)
		switch {
		case name == "":
		case strings.EqualFold(name, "close"):
			delete(h, "Close")
		case strings.EqualFold(name, "keep-alive"):
			delete(h, "Keep-Alive")
		default:
			delete(h, textproto.CanonicalMIMEHeaderKey(name))
		}
	}
}

// maxQueryParams is the number of query parameters over which a query is
// re-encoded, as httputil.ReverseProxy does.
const maxQueryParams = 10000

// cleanQuery returns a query that servers parse as the proxy would: one
// with a ";" separator, an invalid escape or over maxQueryParams
// parameters is re-encoded from what url.ParseQuery keeps of it
// (httputil.ReverseProxy's rule, so that a server does not see parameters
// the proxy's rules did not).
func cleanQuery(s string) string {
	if s == "" {
		return s
	}
	if strings.Count(s, "&")+1 > maxQueryParams {
		return reencodeQuery(s)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencodeQuery(s)
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return reencodeQuery(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

// reencodeQuery is what url.ParseQuery keeps of s, encoded again. It is a
// function of its own, and not inlined, so that the large frame of the
// parse is not on every forwarded request's stack.
//
//go:noinline
func reencodeQuery(s string) string {
	v, _ := url.ParseQuery(s)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
