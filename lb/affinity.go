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

// PinState is what an Affinity found for a request: no pin, a pin it
// honoured, or a pin it could not honour.
type PinState uint8

const (
	// PinNone means the client has no pin (or one Affinity cannot
	// recognise, such as a forged cookie): it is balanced.
	PinNone PinState = iota
	// PinHonoured means the client is pinned to the server returned.
	PinHonoured
	// PinMoved means the client is pinned to a server that cannot be used
	// any more (down, draining, removed, or avoided after a failure): it
	// is balanced to another server and re-pinned.
	PinMoved
)

// String returns "none", "honoured" or "moved".
func (p PinState) String() string {
	switch p {
	case PinHonoured:
		return "honoured"
	case PinMoved:
		return "moved"
	}
	return "none"
}

// PinReporter is implemented by Affinities that can tell a client pinned
// to a server no longer usable from a client without a pin, such as
// package sticky's Cookie and SourceIP. The Pool finds it by type assertion
// on Pool.Affinity and then calls LookupPin instead of Lookup: srv is the
// pinned server when pin is PinHonoured, nil otherwise. The outcome is
// reported in Lease.Moved and the access record's StickyMoved. LookupPin
// is called concurrently and must not block.
type PinReporter interface {
	Affinity
	LookupPin(s *Snapshot, info PickInfo) (srv *Server, pin PinState)
}
