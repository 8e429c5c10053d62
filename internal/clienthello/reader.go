package clienthello

// reader reads the handshake message carried by a sequence of records as
// one stream of bytes: the payload of one record after the other. The
// first error of the record layer sticks in err.
type reader struct {
	frag []byte // unread payload of the current record
	recs []byte // the records after it
	used int    // bytes of records loaded, headers included
	pos  int    // bytes of the message read
	err  error
}

// load makes the next record current. It fails when the records end, or
// when the next one is not a handshake record of 1 to 16384 bytes within
// MaxLen.
func (r *reader) load() bool {
	if r.err != nil {
		return false
	}
	h := r.recs
	if len(h) < recordHeaderLen {
		if len(h) > 0 && (h[0] != recordTypeHandshake || (len(h) > 1 && h[1] != 3)) {
			r.err = ErrMalformed
		} else {
			r.err = ErrShort
		}
		return false
	}
	if h[0] != recordTypeHandshake || h[1] != 3 {
		r.err = ErrMalformed
		return false
	}
	n := int(h[3])<<8 | int(h[4])
	switch {
	case n == 0:
		r.err = ErrMalformed
	case n > maxPlaintext || r.used+recordHeaderLen+n > MaxLen:
		r.err = ErrTooLarge
	case len(h) < recordHeaderLen+n:
		r.err = ErrShort
	}
	if r.err != nil {
		return false
	}
	r.frag = h[recordHeaderLen : recordHeaderLen+n]
	r.recs = h[recordHeaderLen+n:]
	r.used += recordHeaderLen + n
	return true
}

func (r *reader) u8(v *uint8) bool {
	if len(r.frag) == 0 && !r.load() {
		return false
	}
	*v = r.frag[0]
	r.frag = r.frag[1:]
	r.pos++
	return true
}

func (r *reader) u24(v *uint32) bool {
	var a, b, c uint8
	if !r.u8(&a) || !r.u8(&b) || !r.u8(&c) {
		return false
	}
	*v = uint32(a)<<16 | uint32(b)<<8 | uint32(c)
	return true
}

// skip reads n bytes and drops them.
func (r *reader) skip(n int) bool {
	for n > 0 {
		if len(r.frag) == 0 && !r.load() {
			return false
		}
		k := min(n, len(r.frag))
		r.frag = r.frag[k:]
		r.pos += k
		n -= k
	}
	return true
}

// copyTo reads len(dst) bytes into dst.
func (r *reader) copyTo(dst []byte) bool {
	for len(dst) > 0 {
		if len(r.frag) == 0 && !r.load() {
			return false
		}
		k := copy(dst, r.frag)
		r.frag = r.frag[k:]
		r.pos += k
		dst = dst[k:]
	}
	return true
}

// span is a bounded part of the message, from the reader's position to
// end, like a cryptobyte.String over bytes that may cross records. Spans
// are read in order through the reader's methods below, a child before its
// parent goes on. (A span holds no pointer: escape analysis would move
// the reader to the heap if spans were stored through pointers.)
type span struct {
	end int // message position after the span
}

func (r *reader) left(s span) int   { return s.end - r.pos }
func (r *reader) empty(s span) bool { return r.pos >= s.end }

func (r *reader) get8(s span, v *uint8) bool { return r.left(s) >= 1 && r.u8(v) }

func (r *reader) get16(s span, v *uint16) bool {
	var a, b uint8
	if r.left(s) < 2 || !r.u8(&a) || !r.u8(&b) {
		return false
	}
	*v = uint16(a)<<8 | uint16(b)
	return true
}

func (r *reader) skipN(s span, n int) bool { return r.left(s) >= n && r.skip(n) }

func (r *reader) skipRest(s span) bool { return r.skip(r.left(s)) }

func (r *reader) copyN(s span, dst []byte) bool { return r.left(s) >= len(dst) && r.copyTo(dst) }

// sub8 reads a length byte of s into the span of that many bytes.
func (r *reader) sub8(s span, out *span) bool {
	var n uint8
	if !r.get8(s, &n) || r.left(s) < int(n) {
		return false
	}
	*out = span{end: r.pos + int(n)}
	return true
}

// sub16 reads a 16-bit length of s into the span of that many bytes.
func (r *reader) sub16(s span, out *span) bool {
	var n uint16
	if !r.get16(s, &n) || r.left(s) < int(n) {
		return false
	}
	*out = span{end: r.pos + int(n)}
	return true
}
