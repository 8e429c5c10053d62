package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// srvResponse is the http.ResponseWriter of one request. It implements
// http.Flusher, http.Hijacker and the methods http.ResponseController
// looks for (FlushError, SetReadDeadline, SetWriteDeadline,
// EnableFullDuplex). The handler's goroutine uses it; the 100 Continue
// that a body read may send is serialized with WriteHeader.
type srvResponse struct {
	c      *srvConn
	req    *http.Request
	body   srvBody
	hdr    http.Header
	cancel context.CancelFunc // of rctx's Context; cancelRequest calls it
	rctx   hookContext        // the request's context (abort.go)
	url    url.URL            // the request's URL
	// hook is the engine's abort, which cancelRequest runs; rctx offers
	// it when only cancelRequest cancels the request.
	hook abortHook

	status        int
	wroteHeader   bool // a final status was set
	committed     bool // the header went into the write buffer
	handlerDone   bool
	head          bool
	chunking      bool
	closeAfter    bool
	fullDuplex    bool
	expectFailed  bool
	contentLength int64 // declared or computed; -1: unknown
	written       int64
	pend          *[]byte // body held back before the header, to size it
	trailers      []string
	err           error // a write failed: sticky

	contMu        sync.Mutex
	canContinue   atomic.Bool // a 100 Continue may still be sent
	wroteContinue bool
	// expectContinue: the client waits for a 100 Continue to send its body.
	expectContinue bool
}

// continueOwed reports whether the client still waits for a 100 Continue
// that will not come: its body cannot be read.
func (w *srvResponse) continueOwed() bool {
	if !w.expectContinue {
		return false
	}
	w.contMu.Lock()
	defer w.contMu.Unlock()
	return !w.wroteContinue && !w.canContinue.Load()
}

// Header returns the response header map.
func (w *srvResponse) Header() http.Header { return w.hdr }

// AdoptHeader makes h the response's header map in place of the one
// Header returned, when that is still empty and the header was not
// written, and reports whether it did. A proxy hands over the header of
// the response it forwards so, instead of copying its fields; h is the
// response's from then on, and Header returns it.
func (w *srvResponse) AdoptHeader(h http.Header) bool {
	if w.wroteHeader || w.committed || len(w.hdr) > 0 || h == nil {
		return false
	}
	w.hdr = h
	return true
}

// writeContinue answers Expect: 100-continue on the first read of the
// body, unless the response started.
func (w *srvResponse) writeContinue() {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if !w.canContinue.Load() {
		return
	}
	w.canContinue.Store(false)
	w.wroteContinue = true
	bw := w.c.bw
	io.WriteString(bw, "HTTP/1.1 100 Continue\r\n\r\n")
	if err := bw.Flush(); err != nil {
		w.closeAfter = true
	}
}

// stopContinue makes sure no 100 Continue goes out after the response.
func (w *srvResponse) stopContinue() {
	if w.canContinue.Load() {
		w.contMu.Lock()
		w.canContinue.Store(false)
		w.contMu.Unlock()
	}
}

// WriteHeader sets the status; 1xx statuses other than 101 are written at
// once, with the header, as net/http does.
func (w *srvResponse) WriteHeader(code int) {
	if w.c.hijacked {
		w.c.srv.logf("http: response.WriteHeader on hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.srv.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		if code == http.StatusContinue && !w.canContinue.Load() {
			return
		}
		w.contMu.Lock()
		if code == http.StatusContinue {
			w.canContinue.Store(false)
			w.wroteContinue = true
		}
		bw := w.c.bw
		writeStatusLine(bw, code)
		w.writeFields(bw, nil)
		bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			w.fail(err)
		}
		w.contMu.Unlock()
		return
	}
	w.stopContinue()
	w.wroteHeader = true
	w.status = code
	if cl := w.hdr["Content-Length"]; len(cl) > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.c.srv.logf("http: invalid Content-Length of %q", cl[0])
			delete(w.hdr, "Content-Length")
		}
	}
	if tr := w.hdr["Trailer"]; len(tr) > 0 {
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = trimOWS(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
}

func (w *srvResponse) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	w.closeAfter = true
}

// bodyAllowed reports whether the status allows a body.
func (w *srvResponse) bodyAllowed() bool {
	return !(w.status >= 100 && w.status <= 199 || w.status == 204 || w.status == 304)
}

// Write writes body bytes: held back (up to pendSize) while the length is
// unknown and nothing was flushed, so that a short response gets a
// Content-Length; chunked (HTTP/1.1) or until close (HTTP/1.0) beyond.
func (w *srvResponse) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if w.handlerDone {
		return 0, errors.New("h1: Write after the handler returned")
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.committed {
		if w.contentLength == -1 {
			if w.pend == nil {
				w.pend = pendBufs.Get().(*[]byte)
			}
			if len(*w.pend)+len(p) <= pendSize {
				*w.pend = append(*w.pend, p...)
				return len(p), nil
			}
		}
		w.commit(p)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// WriteString is Write of a string.
func (w *srvResponse) WriteString(s string) (int, error) {
	return w.Write([]byte(s))
}

// writeBody writes p to the buffer after the header, framed.
func (w *srvResponse) writeBody(p []byte) {
	if len(p) == 0 || w.head || w.err != nil {
		return
	}
	bw := w.c.bw
	if w.chunking {
		var hex [20]byte
		bw.Write(strconv.AppendUint(hex[:0], uint64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		if err != nil {
			w.fail(err)
		}
		return
	}
	if _, err := bw.Write(p); err != nil {
		w.fail(err)
	}
}

// commit writes the status line and header into the write buffer, and the
// held-back body after it. first is the first body bytes (for content
// sniffing) when none were held back.
func (w *srvResponse) commit(first []byte) {
	w.committed = true
	c := w.c
	req := w.req
	bw := c.bw
	var pend []byte
	if w.pend != nil {
		pend = *w.pend
		if len(pend) > 0 {
			first = pend
		}
	}
	// An unread request body: read it now (net/http does, before the
	// header), or close after the response.
	if req.ContentLength != 0 && !w.closeAfter && !w.fullDuplex {
		if !w.body.discard() {
			w.closeAfter = true
		}
	}
	if req.Close || c.srv.shuttingDown() || headerHasToken(w.hdr, "Connection", "close") {
		w.closeAfter = true
	}
	code := w.status
	bodyOK := w.bodyAllowed()
	_, haveCL := w.hdr["Content-Length"]
	te := w.hdr["Transfer-Encoding"]
	hasTE := len(te) > 0
	if w.handlerDone && !haveCL && !hasTE && bodyOK && w.contentLength == -1 && len(w.trailers) == 0 && (!w.head || len(pend) > 0) {
		w.contentLength = int64(len(pend))
	}
	var extra [4]string
	add := extra[:0]
	if bodyOK && w.contentLength >= 0 && !haveCL {
		add = append(add, "Content-Length: "+strconv.FormatInt(w.contentLength, 10))
	}
	switch {
	case !bodyOK:
	case hasTE && strings.EqualFold(te[0], "identity"):
		w.closeAfter = true
	case hasTE || w.contentLength == -1 && !w.head:
		if req.ProtoMajor == 1 && req.ProtoMinor >= 1 {
			w.chunking = true
		} else {
			w.closeAfter = true // the end of the body is the close
			hasTE = false
		}
	}
	if w.chunking {
		add = append(add, "Transfer-Encoding: chunked")
	}
	if _, ok := w.hdr["Content-Type"]; !ok && bodyOK && !hasTE && len(first) > 0 && len(w.hdr["Content-Encoding"]) == 0 {
		add = append(add, "Content-Type: "+http.DetectContentType(first))
	}
	if w.closeAfter {
		if !headerHasToken(w.hdr, "Connection", "close") {
			add = append(add, "Connection: close")
		}
	} else if req.ProtoMinor == 0 && req.ProtoMajor == 1 {
		add = append(add, "Connection: keep-alive")
	}
	writeStatusLine(bw, code)
	w.writeFields(bw, add)
	if _, ok := w.hdr["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(date())
		bw.WriteString("\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		w.fail(err)
	}
	if w.pend != nil {
		w.writeBody(pend)
		*w.pend = pend[:0]
		pendBufs.Put(w.pend)
		w.pend = nil
	}
}

// excluded reports the header keys commit writes itself or drops.
func (w *srvResponse) excluded(k string) bool {
	if strings.HasPrefix(k, http.TrailerPrefix) {
		return true
	}
	switch k {
	case "Transfer-Encoding":
		return true
	case "Content-Length":
		return !w.bodyAllowed()
	case "Content-Type":
		return w.status == 304
	}
	return false
}

// writeFields writes the header's fields, then add, each with CRLF.
// Invalid names are skipped; CR and LF in values become spaces.
func (w *srvResponse) writeFields(bw *bufio.Writer, add []string) {
	for k, vv := range w.hdr {
		if w.excluded(k) || !validFieldName(k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			bw.WriteString(trimOWS(v))
			bw.WriteString("\r\n")
		}
	}
	for _, f := range add {
		bw.WriteString(f)
		bw.WriteString("\r\n")
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenChar[k[i]] {
			return false
		}
	}
	return true
}

// writeStatusLine writes "HTTP/1.1 code text\r\n".
func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	if code == http.StatusOK {
		bw.WriteString("200 OK\r\n")
		return
	}
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// finish completes the response after the handler returned: the header
// if still held, the last chunk and trailers, and the flush.
func (w *srvResponse) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	bw := w.c.bw
	if w.chunking && w.err == nil {
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.hdr[k] {
				writeTrailer(bw, k, v)
			}
		}
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validFieldName(name) {
				for _, v := range vv {
					writeTrailer(bw, name, v)
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		w.fail(err)
	}
	if !w.head && w.bodyAllowed() && w.contentLength != -1 && w.written != w.contentLength {
		w.closeAfter = true
	}
	if !w.closeAfter && !w.body.discard() {
		w.closeAfter = true
	}
	w.body.Close()
}

func writeTrailer(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = newlineToSpace.Replace(v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// FlushError sends the header and what was written so far to the client.
func (w *srvResponse) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if w.handlerDone {
		return errors.New("h1: Flush after the handler returned")
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.c.bw.Flush(); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// Flush is FlushError without its error (http.Flusher).
func (w *srvResponse) Flush() { _ = w.FlushError() }

// SetReadDeadline sets the connection's read deadline.
func (w *srvResponse) SetReadDeadline(t time.Time) error { return w.c.rwc.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline.
func (w *srvResponse) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body after it
// started the response.
func (w *srvResponse) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// Hijack hands the connection over (http.Hijacker): its deadlines are
// cleared, the bytes read past the request are in the returned reader, and
// ConnState gets StateHijacked. A header written but not yet sent is
// flushed first.
func (w *srvResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.handlerDone {
		return nil, nil, errors.New("h1: Hijack after the handler returned")
	}
	if w.wroteHeader && !w.committed {
		w.commit(nil)
	}
	w.stopContinue()
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	c.hijacked = true
	c.srv.unwatch(c)
	c.rwc.SetDeadline(time.Time{})
	var r io.Reader = c.rwc
	if c.r0 < c.r1 {
		r = io.MultiReader(&leftover{b: append([]byte(nil), c.rbuf[c.r0:c.r1]...)}, c.rwc)
	}
	c.r0, c.r1 = 0, 0
	c.putBufs()
	c.setState(http.StateHijacked, true)
	c.srv.forget(c)
	return c.rwc, bufio.NewReadWriter(bufio.NewReader(r), bufio.NewWriter(c.rwc)), nil
}

// leftover returns bytes read before a hijack.
type leftover struct{ b []byte }

func (l *leftover) Read(p []byte) (int, error) {
	if len(l.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.b)
	l.b = l.b[n:]
	return n, nil
}

// dateCache holds the Date header value of the current second.
var dateCache atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	b   []byte
}

// date returns the current time in http.TimeFormat, formatted once a
// second.
func date() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &dateValue{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	dateCache.Store(d)
	return d.b
}
