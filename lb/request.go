package lb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// DefaultMaxHeaderCount is the number of request header fields a
// ReverseProxy accepts when MaxHeaderCount is zero: HAProxy's default
// (tune.http.maxhdr).
const DefaultMaxHeaderCount = 101

// prefetchSize bounds the first read of a chunked request body, made before
// a server is chosen.
const prefetchSize = 16 << 10

// Errors of a client's request. The proxy answers them itself and never
// counts them against a server. They are wrapped with the cause, if any.
var (
	// ErrBadFraming: the request body's chunked framing is invalid. The
	// client gets 400 Bad Request.
	ErrBadFraming = errors.New("lb: invalid request body framing")
	// ErrBodyTooLarge: the request body exceeds MaxBodyBytes. The client
	// gets 413 Content Too Large.
	ErrBodyTooLarge = errors.New("lb: request body too large")
	// ErrTooManyHeaders: the request holds more header fields than
	// MaxHeaderCount. The client gets 431 Request Header Fields Too Large.
	ErrTooManyHeaders = errors.New("lb: too many request header fields")
	// ErrClientAborted: the client broke off its request body (it closed
	// the connection or its read failed). The client gets 400 Bad Request,
	// if it still listens.
	ErrClientAborted = errors.New("lb: client aborted the request body")
)

// clientFault reports whether err is a failure of the client's request,
// not of a server.
func clientFault(err error) bool {
	return err != nil && (errors.Is(err, ErrBadFraming) || errors.Is(err, ErrBodyTooLarge) ||
		errors.Is(err, ErrClientAborted) || errors.Is(err, ErrTooManyHeaders) ||
		errors.Is(err, ErrClientTimeout))
}

// admit checks r before a server is chosen, and answers it itself (false)
// when it breaks a limit or its framing is invalid. For a chunked body, it
// reads the first part of the body (see ReverseProxy) and replaces r.Body
// with one that replays it, counts the body against MaxBodyBytes and
// reports the client's errors as such.
func (p *ReverseProxy) admit(w http.ResponseWriter, r *http.Request) bool {
	if max := p.maxHeaderCount(); max > 0 && headerCount(r) > max {
		p.fail(w, r, ErrTooManyHeaders)
		return false
	}
	if p.MaxBodyBytes > 0 && r.ContentLength > p.MaxBodyBytes {
		p.fail(w, r, ErrBodyTooLarge)
		return false
	}
	if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody || r.ProtoMajor != 1 {
		// A Content-Length body: net/http reads exactly that many bytes
		// and the transport sends that Content-Length. HTTP/2 frames
		// its bodies itself, and its streams may be bidirectional.
		return true
	}
	return p.prefetch(w, r)
}

// maxHeaderCount is MaxHeaderCount with its default applied; 0 means no
// limit.
func (p *ReverseProxy) maxHeaderCount() int {
	return withDefault(p.MaxHeaderCount, DefaultMaxHeaderCount)
}

// headerCount counts the header fields of r as they were received: its
// Header's values, Host, and Transfer-Encoding, which net/http moves out
// of Header.
func headerCount(r *http.Request) int {
	n := len(r.TransferEncoding)
	if r.Host != "" {
		n++
	}
	for _, vv := range r.Header {
		n += len(vv)
	}
	return n
}

// prefetch reads the first part of a chunked body: one read, which waits
// for the first bytes of the body and returns what has arrived, up to
// prefetchSize. It rejects the request when that part is invalid or over
// MaxBodyBytes; otherwise r's body becomes the part read followed by the
// rest. A body read to its end is sent with a Content-Length.
func (p *ReverseProxy) prefetch(w http.ResponseWriter, r *http.Request) bool {
	size := prefetchSize
	if p.MaxBodyBytes > 0 && p.MaxBodyBytes < prefetchSize {
		size = int(p.MaxBodyBytes) + 1
	}
	// The read goes into a pooled buffer, and what it returned is copied
	// out: the body may outlive the request in a transport's writer.
	pooled := p.bufs.Get()
	n, err := r.Body.Read(pooled[:size])
	buf := append([]byte(nil), pooled[:n]...)
	p.bufs.Put(pooled)
	if err != nil && err != io.EOF {
		p.fail(w, r, bodyError(err))
		return false
	}
	if p.MaxBodyBytes > 0 && int64(n) > p.MaxBodyBytes {
		p.fail(w, r, ErrBodyTooLarge)
		return false
	}
	if isContinue(r.Header) {
		// Reading the body made net/http answer 100 Continue: the
		// expectation is met, and is not the server's to meet again.
		delete(r.Header, "Expect")
	}
	if err == io.EOF && len(r.Trailer) == 0 {
		// The whole body: sent with a Content-Length, and through the
		// HTTP/1.1 engine when small.
		r.TransferEncoding = nil
		r.ContentLength = int64(n)
		if n == 0 {
			r.Body = http.NoBody
		} else {
			r.Body = &framedBody{buf: buf[:n], eof: true}
		}
		return true
	}
	r.Body = &framedBody{buf: buf[:n], rest: r.Body, eof: err == io.EOF, n: int64(n), max: p.MaxBodyBytes}
	return true
}

// isContinue reports whether h asks for 100-continue.
func isContinue(h http.Header) bool {
	for _, v := range h["Expect"] {
		if strings.EqualFold(textproto.TrimString(v), "100-continue") {
			return true
		}
	}
	return false
}

// bodyError classifies an error reading a client's body: a client that
// went away or timed out aborted; anything else is invalid framing
// (net/http's chunked reader) or a limit of a wrapper.
func bodyError(err error) error {
	if clientFault(err) || errors.Is(err, http.ErrBodyReadAfterClose) {
		// Already classified, or the proxy's own late read (see
		// replayableBody).
		return err
	}
	var ne net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
		return fmt.Errorf("%w: %w", ErrClientAborted, err)
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return fmt.Errorf("%w: %w", ErrBodyTooLarge, err)
	}
	return fmt.Errorf("%w: %w", ErrBadFraming, err)
}

// framedBody is the body of a request whose framing lbkit checked: the part
// read before forwarding (buf), then the rest of the client's body, whose
// errors it reports as the client's and which it counts against max.
// Read is not safe for concurrent use, as any body.
type framedBody struct {
	buf  []byte
	rest io.ReadCloser // nil when buf is the whole body
	eof  bool          // rest returned io.EOF
	n    int64         // bytes of the body read from the client
	max  int64         // MaxBodyBytes; 0: no limit
	err  error         // rest's error, returned again
}

func (b *framedBody) Read(p []byte) (int, error) {
	if len(b.buf) > 0 {
		n := copy(p, b.buf)
		b.buf = b.buf[n:]
		return n, nil
	}
	if b.eof || b.rest == nil {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.max > 0 && int64(len(p)) > b.max-b.n+1 {
		p = p[:b.max-b.n+1]
	}
	n, err := b.rest.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		b.err = fmt.Errorf("%w (over %s bytes)", ErrBodyTooLarge, strconv.FormatInt(b.max, 10))
		return 0, b.err
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		err = bodyError(err)
		b.err = err
	}
	return n, err
}

// Close does nothing: the client's body belongs to net/http's server.
func (b *framedBody) Close() error { return nil }
