package clienthello

import (
	"errors"
	"iter"
)

// Bounds of what Parse reads and keeps.
const (
	// MaxLen bounds the records that carry the hello, headers included.
	MaxLen = 16 << 10
	// MaxServerName bounds the server name.
	MaxServerName = 255
	// MaxALPN bounds the ALPN protocol list as sent: each protocol with
	// its length byte.
	MaxALPN = 512
)

// Errors of Parse. ErrNotTLS and ErrShort are about the records, the others
// about the hello.
var (
	// ErrNotTLS: the buffer does not start with a TLS handshake record.
	ErrNotTLS = errors.New("clienthello: not a TLS handshake record")
	// ErrShort: the buffer ends before the hello does.
	ErrShort = errors.New("clienthello: truncated")
	// ErrMalformed: a record or the hello is invalid, or the handshake
	// message is not a ClientHello.
	ErrMalformed = errors.New("clienthello: malformed ClientHello")
	// ErrTooLarge: the records exceed MaxLen, or a valid hello's server
	// name or ALPN list exceeds MaxServerName or MaxALPN.
	ErrTooLarge = errors.New("clienthello: ClientHello beyond limits")
)

// Hello is what Parse reads from a ClientHello. Its zero value is an empty
// result; Parse resets it, and after an error its contents mean nothing.
// The slices its methods return alias the Hello and are valid until it is
// reused. A Hello is about 800 bytes: keep it on the stack or reuse it. It
// is not safe for concurrent use while Parse writes it.
type Hello struct {
	// Len is the number of bytes of the records that carry the hello,
	// headers included; the hello ends in the last of them.
	Len int
	// Version is the hello's legacy_version (0x0303 for TLS 1.2 and 1.3).
	Version uint16

	sniLen  int
	alpnLen int // bytes of alpn in use
	alpnN   int // protocols in alpn
	sni     [MaxServerName]byte
	alpn    [MaxALPN]byte // the protocol_name_list: length byte, name, ...
}

// ServerName returns the host_name of the server_name extension, empty when
// the client sent none.
func (h *Hello) ServerName() []byte { return h.sni[:h.sniLen] }

// NumALPN returns the number of ALPN protocols the client offered.
func (h *Hello) NumALPN() int { return h.alpnN }

// ALPN yields the ALPN protocols the client offered, in its order. Ranging
// over it does not allocate.
func (h *Hello) ALPN() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) { h.eachALPN(yield) }
}

func (h *Hello) eachALPN(yield func([]byte) bool) {
	b := h.alpn[:h.alpnLen]
	for len(b) > 0 {
		n := int(b[0])
		if !yield(b[1 : 1+n]) {
			return
		}
		b = b[1+n:]
	}
}

const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	maxPlaintext        = 16384
	typeClientHello     = 1
)

// Extension types that crypto/tls parses (crypto/tls/common.go).
const (
	extServerName          = 0
	extStatusRequest       = 5
	extSupportedCurves     = 10
	extSupportedPoints     = 11
	extSignatureAlgorithms = 13
	extALPN                = 16
	extSCT                 = 18
	extExtendedMaster      = 23
	extSessionTicket       = 35
	extPreSharedKey        = 41
	extEarlyData           = 42
	extSupportedVersions   = 43
	extCookie              = 44
	extPSKModes            = 45
	extSignatureAlgsCert   = 50
	extKeyShare            = 51
	extQUICTransportParams = 57
	extRenegotiationInfo   = 0xff01
	extECH                 = 0xfe0d
)

// Parse reads the ClientHello carried by the handshake records at the start
// of b into h. Bytes after the hello, in its last record or beyond, are
// ignored. It returns ErrNotTLS when b does not start like a handshake
// record, ErrShort when b ends inside the hello (more bytes may complete
// it), ErrMalformed or ErrTooLarge otherwise. b is neither modified nor
// retained.
func Parse(b []byte, h *Hello) error {
	h.Len, h.Version, h.sniLen, h.alpnLen, h.alpnN = 0, 0, 0, 0, 0
	if len(b) == 0 {
		return ErrShort
	}
	if b[0] != recordTypeHandshake || (len(b) > 1 && b[1] != 3) {
		return ErrNotTLS
	}
	r := reader{recs: b}
	err := parse(&r, h)
	if r.err != nil {
		return r.err // the records ended or broke first
	}
	if err != nil {
		return err
	}
	h.Len = r.used // the rest of the last record included
	return nil
}

func parse(r *reader, h *Hello) error {
	var typ uint8
	var n uint32
	if !r.u8(&typ) || !r.u24(&n) {
		return ErrMalformed
	}
	if typ != typeClientHello {
		return ErrMalformed
	}
	if n > MaxLen { // larger than the records may be
		return ErrTooLarge
	}
	msg := span{end: r.pos + int(n)}

	var sessionID, suites, compression span
	if !r.get16(msg, &h.Version) || !r.skipN(msg, 32) ||
		!r.sub8(msg, &sessionID) || !r.skipRest(sessionID) ||
		!r.sub16(msg, &suites) || r.left(suites)%2 != 0 || !r.skipRest(suites) ||
		!r.sub8(msg, &compression) || !r.skipRest(compression) {
		return ErrMalformed
	}
	if r.empty(msg) {
		return nil // extensions are optional
	}
	var exts span
	if !r.sub16(msg, &exts) || exts.end != msg.end {
		return ErrMalformed
	}

	var tooLarge bool
	var seen dupSet
	for !r.empty(exts) {
		var ext uint16
		var data span
		if !r.get16(exts, &ext) || !r.sub16(exts, &data) {
			return ErrMalformed
		}
		if seen.add(ext) {
			return ErrMalformed
		}
		ok := true
		switch ext {
		case extServerName:
			ok = serverName(r, data, h, &tooLarge)
		case extStatusRequest:
			var ignored span
			ok = r.skipN(data, 1) &&
				r.sub16(data, &ignored) && r.skipRest(ignored) &&
				r.sub16(data, &ignored) && r.skipRest(ignored)
		case extSupportedCurves, extSignatureAlgorithms, extSignatureAlgsCert:
			var list span
			ok = r.sub16(data, &list) && !r.empty(list) && r.left(list)%2 == 0 && r.skipRest(list)
		case extSupportedPoints:
			var list span
			ok = r.sub8(data, &list) && !r.empty(list) && r.skipRest(list)
		case extSessionTicket, extQUICTransportParams:
			ok = r.skipRest(data)
		case extRenegotiationInfo, extPSKModes:
			var v span
			ok = r.sub8(data, &v) && r.skipRest(v)
		case extExtendedMaster, extSCT, extEarlyData:
			// No content: the check below requires data to be empty.
		case extALPN:
			ok = alpn(r, data, h, &tooLarge)
		case extSupportedVersions:
			var list span
			ok = r.sub8(data, &list) && !r.empty(list) && r.left(list)%2 == 0 && r.skipRest(list)
		case extCookie:
			var v span
			ok = r.sub16(data, &v) && !r.empty(v) && r.skipRest(v)
		case extKeyShare:
			ok = keyShares(r, data)
		case extPreSharedKey:
			// pre_shared_key must be the last extension.
			ok = data.end == exts.end && preSharedKey(r, data)
		case extECH:
			ok = ech(r, data)
		default:
			if !r.skipRest(data) {
				return ErrMalformed
			}
			continue
		}
		if !ok || !r.empty(data) {
			return ErrMalformed
		}
	}
	if tooLarge {
		return ErrTooLarge
	}
	return nil
}

// serverName reads the server_name extension (RFC 6066, section 3) as
// crypto/tls does: a non-empty list of non-empty names, at most one of
// type host_name (0), without a trailing dot; other types are skipped.
func serverName(r *reader, data span, h *Hello, tooLarge *bool) bool {
	var list span
	if !r.sub16(data, &list) || r.empty(list) {
		return false
	}
	seen := false
	for !r.empty(list) {
		var typ uint8
		var name span
		if !r.get8(list, &typ) || !r.sub16(list, &name) || r.empty(name) {
			return false
		}
		if typ != 0 {
			if !r.skipRest(name) {
				return false
			}
			continue
		}
		if seen {
			return false // two host names
		}
		seen = true
		n := r.left(name)
		var last byte
		if n <= MaxServerName {
			if !r.copyN(name, h.sni[:n]) {
				return false
			}
			h.sniLen, last = n, h.sni[n-1]
		} else {
			*tooLarge = true
			if !r.skipN(name, n-1) || !r.get8(name, &last) {
				return false
			}
		}
		if last == '.' {
			return false
		}
	}
	return true
}

// alpn reads the application_layer_protocol_negotiation extension
// (RFC 7301, section 3.1): a non-empty list of non-empty names.
func alpn(r *reader, data span, h *Hello, tooLarge *bool) bool {
	var list span
	if !r.sub16(data, &list) || r.empty(list) {
		return false
	}
	n := r.left(list)
	if n > MaxALPN {
		*tooLarge = true
	}
	for !r.empty(list) {
		var proto span
		if !r.sub8(list, &proto) || r.empty(proto) {
			return false
		}
		if n > MaxALPN {
			if !r.skipRest(proto) {
				return false
			}
			continue
		}
		k := r.left(proto)
		h.alpn[h.alpnLen] = byte(k)
		if !r.copyN(proto, h.alpn[h.alpnLen+1:h.alpnLen+1+k]) {
			return false
		}
		h.alpnLen += 1 + k
		h.alpnN++
	}
	if n > MaxALPN {
		h.alpnLen, h.alpnN = 0, 0
	}
	return true
}

// keyShares reads the key_share extension (RFC 8446, section 4.2.8): a
// possibly empty list of groups with non-empty keys.
func keyShares(r *reader, data span) bool {
	var list span
	if !r.sub16(data, &list) {
		return false
	}
	for !r.empty(list) {
		var key span
		if !r.skipN(list, 2) || !r.sub16(list, &key) || r.empty(key) || !r.skipRest(key) {
			return false
		}
	}
	return true
}

// preSharedKey reads the pre_shared_key extension (RFC 8446, section
// 4.2.11): non-empty lists of non-empty identities and binders.
func preSharedKey(r *reader, data span) bool {
	var ids, binders span
	if !r.sub16(data, &ids) || r.empty(ids) {
		return false
	}
	for !r.empty(ids) {
		var label span
		if !r.sub16(ids, &label) || r.empty(label) || !r.skipRest(label) || !r.skipN(ids, 4) {
			return false
		}
	}
	if !r.sub16(data, &binders) || r.empty(binders) {
		return false
	}
	for !r.empty(binders) {
		var binder span
		if !r.sub8(binders, &binder) || r.empty(binder) || !r.skipRest(binder) {
			return false
		}
	}
	return true
}

// ech checks the encrypted_client_hello extension as crypto/tls's server
// does before it looks at the hello, even without ECH keys: an inner
// marker alone, or an outer extension with its cipher suite, config id,
// encapsulated key and payload (bytes after the payload are not checked).
// An empty extension is not examined.
func ech(r *reader, data span) bool {
	if r.empty(data) {
		return true
	}
	var typ uint8
	if !r.get8(data, &typ) {
		return false
	}
	switch typ {
	case 1: // inner
		return r.empty(data)
	case 0: // outer
		var encap, payload span
		return r.skipN(data, 5) &&
			r.sub16(data, &encap) && r.skipRest(encap) &&
			r.sub16(data, &payload) && r.skipRest(payload) &&
			r.skipRest(data)
	}
	return false
}

// dupSet remembers the extension types seen: a short list, then a bitmap
// of every type for hellos with many extensions.
type dupSet struct {
	n    int
	list [32]uint16
	all  *[1 << 16 / 64]uint64
}

// add records t and reports whether it was seen before.
func (d *dupSet) add(t uint16) bool {
	if d.all == nil {
		for _, u := range d.list[:d.n] {
			if u == t {
				return true
			}
		}
		if d.n < len(d.list) {
			d.list[d.n] = t
			d.n++
			return false
		}
		d.all = newBitmap()
		for _, u := range d.list {
			d.all[u/64] |= 1 << (u % 64)
		}
	}
	if d.all[t/64]&(1<<(t%64)) != 0 {
		return true
	}
	d.all[t/64] |= 1 << (t % 64)
	return false
}

//go:noinline
func newBitmap() *[1 << 16 / 64]uint64 { return new([1 << 16 / 64]uint64) }
