package lb

import (
	"encoding/hex"
	mrand "math/rand/v2"
)

// DefaultRequestIDHeader is the header that carries request IDs when
// ReverseProxy.RequestIDHeader is empty.
const DefaultRequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a request ID taken from a client.
const maxRequestIDLen = 128

// newRequestID returns 32 random lowercase hex digits (128 bits) in one
// allocation. The bits come from math/rand/v2's ChaCha8-based generator,
// which is unpredictable enough for IDs and needs no system call.
func newRequestID() string {
	var b [16]byte
	putRandom(b[:])
	return hex.EncodeToString(b[:])
}

func putRandom(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := mrand.Uint64()
		for j := i; j < i+8 && j < len(b); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}

// validRequestID reports whether a request ID from a client may be kept:
// 1 to 128 visible ASCII characters, without quotes or backslashes, which
// log formats would have to escape.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// TraceParent is a parsed W3C Trace Context traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header).
type TraceParent struct {
	Version  byte
	TraceID  [16]byte
	ParentID [8]byte
	Flags    byte
}

// ParseTraceParent parses a traceparent header strictly, as the W3C
// recommendation says a vendor must: version 00 is exactly
// "00-<32 hex>-<16 hex>-<2 hex>" in lowercase, with a trace-id and a
// parent-id that are not all zeros; version ff is invalid; a later version
// may append "-..." fields, which are ignored. ok is false for anything
// else.
func ParseTraceParent(s string) (tp TraceParent, ok bool) {
	if len(s) < 55 {
		return tp, false
	}
	v, ok1 := hexByte(s[0], s[1])
	if !ok1 || v == 0xff || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tp, false
	}
	if v == 0 && len(s) != 55 || v != 0 && len(s) > 55 && s[55] != '-' {
		return tp, false
	}
	if !decodeLowerHex(tp.TraceID[:], s[3:35]) || !decodeLowerHex(tp.ParentID[:], s[36:52]) {
		return tp, false
	}
	f, ok2 := hexByte(s[53], s[54])
	if !ok2 || tp.TraceID == [16]byte{} || tp.ParentID == [8]byte{} {
		return tp, false
	}
	tp.Version, tp.Flags = v, f
	return tp, true
}

// String formats tp as a version 00 traceparent header.
func (tp TraceParent) String() string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tp.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], tp.ParentID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{tp.Flags})
	return string(b[:])
}

// nextTraceParent returns the traceparent the proxy sends for its hop: the
// client's trace with a new parent-id when in is valid (keep is true),
// otherwise a new trace, not sampled.
func nextTraceParent(in string) (out TraceParent, keep bool) {
	out, keep = ParseTraceParent(in)
	if !keep {
		out = TraceParent{}
		for out.TraceID == [16]byte{} {
			putRandom(out.TraceID[:])
		}
	}
	out.Version = 0
	out.ParentID = [8]byte{}
	for out.ParentID == [8]byte{} {
		putRandom(out.ParentID[:])
	}
	return out, keep
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := lowerHex(hi)
	l, ok2 := lowerHex(lo)
	return h<<4 | l, ok1 && ok2
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func decodeLowerHex(dst []byte, s string) bool {
	for i := range dst {
		b, ok := hexByte(s[2*i], s[2*i+1])
		if !ok {
			return false
		}
		dst[i] = b
	}
	return true
}
