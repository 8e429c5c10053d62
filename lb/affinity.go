package lb

import "net/http"

// ResponseAffinity is implemented by Affinities that answer through the HTTP
// response, such as a sticky cookie: a plain Affinity's Pin has no response
// to write to. ReverseProxy finds it by type assertion on Pool.Affinity and
// calls PinResponse once per request, after the server's response headers
// arrived and before they are written to the client (and before
// ReverseProxy.ModifyResponse).
//
// h is the response header, which PinResponse may change (to add a
// Set-Cookie, say); info is the request's PickInfo; s is the server that
// answered, and sticky reports that Affinity.Lookup chose it (Lease.Sticky).
// PinResponse is called concurrently and must not block.
type ResponseAffinity interface {
	Affinity
	PinResponse(h http.Header, info PickInfo, s *Server, sticky bool)
}
