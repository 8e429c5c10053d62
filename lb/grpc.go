package lb

import (
	"net/http"
	"strconv"
	"strings"
)

// GRPCCode is a gRPC status code, as carried in the grpc-status trailer.
// The values are those of the gRPC specification (and of grpc-go's
// codes.Code); lbkit defines them so that lb does not import grpc-go.
type GRPCCode uint32

// The gRPC status codes.
const (
	GRPCOK                 GRPCCode = 0
	GRPCCanceled           GRPCCode = 1
	GRPCUnknown            GRPCCode = 2
	GRPCInvalidArgument    GRPCCode = 3
	GRPCDeadlineExceeded   GRPCCode = 4
	GRPCNotFound           GRPCCode = 5
	GRPCAlreadyExists      GRPCCode = 6
	GRPCPermissionDenied   GRPCCode = 7
	GRPCResourceExhausted  GRPCCode = 8
	GRPCFailedPrecondition GRPCCode = 9
	GRPCAborted            GRPCCode = 10
	GRPCOutOfRange         GRPCCode = 11
	GRPCUnimplemented      GRPCCode = 12
	GRPCInternal           GRPCCode = 13
	GRPCUnavailable        GRPCCode = 14
	GRPCDataLoss           GRPCCode = 15
	GRPCUnauthenticated    GRPCCode = 16
)

// IsGRPC reports whether r is a gRPC request: its Content-Type is
// application/grpc, alone or with a "+codec" suffix or parameters, or one
// of the gRPC-Web types (application/grpc-web, application/grpc-web-text).
// It is safe for concurrent use and does not allocate.
func IsGRPC(r *http.Request) bool {
	return grpcContentType(r.Header.Get("Content-Type")) != ""
}

// grpcContentType returns the Content-Type a gRPC error response to a
// request of Content-Type ct carries: "application/grpc",
// "application/grpc-web" or "application/grpc-web-text", or "" when ct is
// not a gRPC type. Case is ignored, as media types are case-insensitive.
func grpcContentType(ct string) string {
	const base = "application/grpc"
	if len(ct) < len(base) || !strings.EqualFold(ct[:len(base)], base) {
		return ""
	}
	rest := ct[len(base):]
	kind := base
	const web, text = "-web", "-text"
	if len(rest) >= len(web) && strings.EqualFold(rest[:len(web)], web) {
		kind, rest = "application/grpc-web", rest[len(web):]
		if len(rest) >= len(text) && strings.EqualFold(rest[:len(text)], text) {
			kind, rest = "application/grpc-web-text", rest[len(text):]
		}
	}
	if rest == "" || rest[0] == '+' || rest[0] == ';' {
		return kind
	}
	return ""
}

// WriteGRPCError answers the gRPC request r with status code and message
// msg, the way gRPC servers and Envoy answer a call they cannot serve: HTTP
// status 200, a gRPC Content-Type and grpc-status and grpc-message in the
// response header, with no body (a Trailers-Only response: over HTTP/2,
// one HEADERS frame that ends the stream). A gRPC client then reports the
// status code, where an HTML or plain-text 502 or 503 would surface as a
// protocol error. msg is percent-encoded as the gRPC specification
// requires; it goes to the client, so it must not hold internal details.
//
// Call it before anything of the response was written; for a request that
// is not gRPC (see IsGRPC) answer with http.Error instead. gRPC-Web clients
// read the same response.
func WriteGRPCError(w http.ResponseWriter, r *http.Request, code GRPCCode, msg string) {
	ct := grpcContentType(r.Header.Get("Content-Type"))
	if ct == "" {
		ct = "application/grpc"
	}
	h := w.Header()
	delete(h, "Content-Length")
	delete(h, "Content-Encoding")
	h["Content-Type"] = []string{ct}
	h["Grpc-Status"] = []string{strconv.FormatUint(uint64(code), 10)}
	if msg != "" {
		h["Grpc-Message"] = []string{encodeGRPCMessage(msg)}
	}
	w.WriteHeader(http.StatusOK)
}

// GRPCCodeForError maps a proxying error to the gRPC status a client gets,
// from the HTTP status StatusForError gives it: DEADLINE_EXCEEDED on a
// server timeout, UNAVAILABLE when no server is available or the server
// failed (as Envoy answers), RESOURCE_EXHAUSTED for a request over the
// proxy's size limits (ErrBodyTooLarge, ErrTooManyHeaders), which a retry
// would not help, and otherwise GRPCCodeForStatus's mapping (INTERNAL for
// invalid framing).
func GRPCCodeForError(err error) GRPCCode {
	switch status := StatusForError(err); status {
	case http.StatusGatewayTimeout:
		return GRPCDeadlineExceeded
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return GRPCResourceExhausted
	default:
		return GRPCCodeForStatus(status)
	}
}

// GRPCCodeForStatus maps an HTTP status to a gRPC status code as the gRPC
// specification's HTTP-to-gRPC mapping does (400 INTERNAL, 401
// UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503
// and 504 UNAVAILABLE, other statuses UNKNOWN), for handlers in front of
// the proxy (access rules, rate limits) that answer gRPC requests with
// WriteGRPCError.
func GRPCCodeForStatus(status int) GRPCCode {
	switch status {
	case http.StatusOK:
		return GRPCOK
	case http.StatusBadRequest:
		return GRPCInternal
	case http.StatusUnauthorized:
		return GRPCUnauthenticated
	case http.StatusForbidden:
		return GRPCPermissionDenied
	case http.StatusNotFound:
		return GRPCUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return GRPCUnavailable
	}
	return GRPCUnknown
}

// encodeGRPCMessage percent-encodes msg for the grpc-message field: bytes
// outside printable ASCII, and '%', become %XX.
func encodeGRPCMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(msg) + 16)
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// failGRPC answers a gRPC request that failed with the gRPC status of err,
// with the standard text of the HTTP status StatusForError gives it as the
// message ("Service Unavailable", "Gateway Timeout", "Bad Gateway"): the
// error itself may name servers' addresses.
func failGRPC(w http.ResponseWriter, r *http.Request, err error) {
	WriteGRPCError(w, r, GRPCCodeForError(err), http.StatusText(StatusForError(err)))
}
