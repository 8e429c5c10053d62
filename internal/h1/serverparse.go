package h1

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Request parsing of the server engine. The parsers are pure functions of
// bytes, so that each has a fuzz target. They are at least as strict as
// net/http's server: a request it refuses, they refuse too, with the same
// status.

// statusError is a request the server answers itself with status and
// closes the connection after: 400, 431, 501 or 505.
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("h1: %d %s: %s", e.status, http.StatusText(e.status), e.reason)
}

func badRequest(reason string) error { return &statusError{http.StatusBadRequest, reason} }

var (
	errHeaderTooLarge = &statusError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}
	errUnsupportedTE  = &statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
	errVersion        = &statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
)

// tokenChar reports the bytes of an RFC 9110 token (method, field name).
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// requestLine is a parsed request line.
type requestLine struct {
	method, target string
	major, minor   int
}

// parseRequestLine parses "method SP request-target SP HTTP-version", the
// line without its line ending, as net/http does: single spaces, a token
// method, a target without spaces or control bytes, and a version
// HTTP/d.d. A version other than 1.x is errVersion (505).
func parseRequestLine(line string) (requestLine, error) {
	var rl requestLine
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return rl, badRequest("malformed request line")
	}
	if method == "" {
		return rl, badRequest("empty method")
	}
	for i := 0; i < len(method); i++ {
		if !tokenChar[method[i]] {
			return rl, badRequest("invalid method")
		}
	}
	if target == "" {
		return rl, badRequest("empty request target")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return rl, badRequest("invalid request target")
		}
	}
	switch proto {
	case "HTTP/1.1":
		rl.major, rl.minor = 1, 1
	case "HTTP/1.0":
		rl.major, rl.minor = 1, 0
	default:
		if len(proto) != 8 || !strings.HasPrefix(proto, "HTTP/") || proto[6] != '.' ||
			proto[5] < '0' || proto[5] > '9' || proto[7] < '0' || proto[7] > '9' {
			return rl, badRequest("malformed HTTP version")
		}
		rl.major, rl.minor = int(proto[5]-'0'), int(proto[7]-'0')
		if rl.major != 1 {
			return rl, errVersion
		}
	}
	rl.method, rl.target = method, target
	return rl, nil
}

// scanHeaderEnd looks for the empty line that ends a request head in b,
// from offset from (a position at which no earlier line ended). It returns
// the length of the head through that line, or -1 and the offset to resume
// from once more bytes came. Lines end with LF, optionally preceded by CR.
func scanHeaderEnd(b []byte, from int) (end, resume int) {
	i := from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, len(b)
		}
		k := i + j + 1 // the start of the next line
		if k < len(b) && b[k] == '\n' {
			return k + 1, 0
		}
		if k+1 < len(b) && b[k] == '\r' && b[k+1] == '\n' {
			return k + 2, 0
		}
		if k == len(b) || k+1 == len(b) && b[k] == '\r' {
			return -1, i + j // look at this line end again
		}
		i = k
	}
}

// field is one header field line, its value trimmed.
type field struct{ name, value string }

// nextLine returns the first line of s without its line ending, and the
// rest. A line ends with LF, optionally preceded by CR.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if strings.HasSuffix(line, "\r") {
		line = line[:len(line)-1]
	}
	return line, rest
}

// trimOWS trims spaces and horizontal tabs at both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validValue reports whether a trimmed field value holds no control byte
// other than HTAB (httpguts.ValidHeaderFieldValue).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseFields parses the field lines of a request head (after the request
// line, through the empty line) into fields, appended to dst. A line that
// starts with a space or tab continues the previous field (obs-fold): it
// is joined to it with one space, as net/http does. A name must be a
// token, followed at once by a colon.
func parseFields(dst []field, s string) ([]field, error) {
	for {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return dst, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(dst) == 0 {
				return dst, badRequest("malformed header: folded first line")
			}
			v := trimOWS(line)
			if !validValue(v) {
				return dst, badRequest("invalid header value")
			}
			if v != "" {
				last := &dst[len(dst)-1]
				if last.value == "" {
					last.value = v
				} else {
					last.value = last.value + " " + v
				}
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return dst, badRequest("malformed header line")
		}
		for i := 0; i < len(name); i++ {
			if !tokenChar[name[i]] {
				return dst, badRequest("invalid header name")
			}
		}
		value = trimOWS(value)
		if !validValue(value) {
			return dst, badRequest("invalid header value")
		}
		dst = append(dst, field{name, value})
	}
}

// buildHeader makes an http.Header of fields, with canonical keys; the
// values of all fields share one backing array.
func buildHeader(fields []field) http.Header {
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields))
	for i, f := range fields {
		k := canonicalKey(f.name)
		vals[i] = f.value
		if vv, ok := h[k]; ok {
			h[k] = append(vv, f.value)
			continue
		}
		h[k] = vals[i : i+1 : i+1]
	}
	return h
}

// parseContentLength parses a Content-Length value: decimal digits only,
// at most 2^63-1.
func parseContentLength(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, badRequest("invalid Content-Length")
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, badRequest("invalid Content-Length")
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, badRequest("invalid Content-Length")
	}
	return int64(n), nil
}

// hasToken reports whether the comma-separated list v holds token,
// compared without case.
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

// headerHasToken is hasToken over every value of h[key].
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h[key] {
		if hasToken(v, token) {
			return true
		}
	}
	return false
}

// framing is how a request's body is delimited, from its header.
type framing struct {
	contentLength int64 // -1: chunked
	chunked       bool
	trailer       http.Header // declared trailer keys, for a chunked body
}

// requestFraming applies RFC 9112's rules as net/http's server does, to a
// header it edits in place: Transfer-Encoding must be exactly "chunked"
// (one field, any case) on HTTP/1.1 and is ignored on HTTP/1.0; it is
// removed from h, and a Content-Length beside it too. Several
// Content-Length fields must agree. No Content-Length means no body.
func requestFraming(h http.Header, major, minor int) (framing, error) {
	var fr framing
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if major > 1 || major == 1 && minor >= 1 {
			if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
				return fr, errUnsupportedTE
			}
			// A Content-Length beside chunked is ignored, but must be
			// valid, as net/http requires: a request that two parsers
			// could frame differently is refused.
			if _, err := contentLength(h); err != nil {
				return fr, err
			}
			fr.chunked = true
			fr.contentLength = -1
			delete(h, "Content-Length")
			if tr, ok := h["Trailer"]; ok {
				delete(h, "Trailer")
				fr.trailer = make(http.Header)
				for _, v := range tr {
					for v != "" {
						var k string
						k, v, _ = strings.Cut(v, ",")
						k = trimOWS(k)
						if k == "" {
							continue
						}
						if !httpguts.ValidHeaderFieldName(k) {
							return fr, badRequest("bad trailer key")
						}
						k = http.CanonicalHeaderKey(k)
						switch k {
						case "Transfer-Encoding", "Trailer", "Content-Length":
							return fr, badRequest("bad trailer key")
						}
						fr.trailer[k] = nil
					}
				}
				if len(fr.trailer) == 0 {
					fr.trailer = nil
				}
			}
			return fr, nil
		}
	}
	n, err := contentLength(h)
	if err != nil {
		return fr, err
	}
	fr.contentLength = n
	return fr, nil
}

// contentLength checks the Content-Length fields of h (identical values,
// kept once, and a valid length) and returns the length, 0 without one.
func contentLength(h http.Header) (int64, error) {
	cl := h["Content-Length"]
	if len(cl) == 0 {
		return 0, nil
	}
	for _, v := range cl[1:] {
		if v != cl[0] {
			return 0, badRequest("conflicting Content-Length fields")
		}
	}
	if len(cl) > 1 {
		h["Content-Length"] = cl[:1]
	}
	return parseContentLength(cl[0])
}

// Chunked body parsing (RFC 9112 section 7.1), as net/http's reader does it:
// a chunk line is hex digits (at most 16), optional whitespace, an
// optional extension (discarded unchecked after ';'), then CRLF; the data
// is followed by CRLF.

// maxChunkLine bounds a chunk-size line (with its extension) and a trailer
// field line.
const maxChunkLine = 4096

var (
	errChunkLine     = errors.New("h1: malformed chunked encoding")
	errChunkTooLong  = errors.New("h1: chunk line too long")
	errChunkOverhead = errors.New("h1: chunked encoding contains too much non-data")
)

// parseChunkSize parses a chunk-size line, its CRLF removed.
func parseChunkSize(line []byte) (int64, error) {
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 || len(line) > 16 {
		return 0, errChunkLine
	}
	var n uint64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errChunkLine
		}
		n = n<<4 | uint64(c)
	}
	if n > 1<<63-1 {
		return 0, errChunkLine
	}
	return int64(n), nil
}

// parseTrailerLine parses one trailer field line (CRLF removed) into
// name and value, or fails as a header line would.
func parseTrailerLine(line string) (string, string, error) {
	f, err := parseFields(nil, line+"\n\n")
	if err != nil {
		return "", "", err
	}
	if len(f) != 1 {
		return "", "", badRequest("malformed trailer line")
	}
	return f[0].name, f[0].value, nil
}
