package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// readResponse reads a response head from br as http.ReadResponse does.
// The common case, a whole head already in br's buffer whose every line
// is plain (see readSimpleResponse), is parsed without copying each value
// and with the body framing kept by the engine's body type; anything else,
// errors included, is left to http.ReadResponse, so that the engine
// accepts and rejects exactly what net/http does.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if resp := readSimpleResponse(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// crlfcrlf ends a response head.
var crlfcrlf = []byte("\r\n\r\n")

// readSimpleResponse parses the response head at the start of br's
// buffer when it is there whole and is of the simple kind, consuming it,
// or returns nil having consumed nothing. Simple means: an "HTTP/1.1"
// status line with a three-digit final status (200 to 999) and a reason
// of printable ASCII; every line ending in CRLF; header names of token
// characters followed directly by a colon; values of valid bytes; no
// folded lines; no Trailer or Pragma header; the body framed by one
// plain decimal Content-Length or by a Transfer-Encoding: chunked alone
// (or absent where no body is allowed). For such a head,
// http.ReadResponse would return the same Response (same Header values
// and canonical keys, same ContentLength, TransferEncoding, Close and body
// bytes, with Connection removed when it says close); this is checked by
// TestReadSimpleResponse and FuzzReadSimpleResponse.
//
// The head is copied into one string that holds the status, the header
// values and the header names already canonical; other names of common
// headers are interned. The body, when there is one, is a *body without
// its connection, which exchange completes. All takes four allocations
// for a head of up to seven header names.
func readSimpleResponse(br *bufio.Reader, req *http.Request) *http.Response {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil
	}
	headLen := end + 4

	// Status line: "HTTP/1.1 ddd" and an optional " reason".
	const proto = "HTTP/1.1 "
	line := bytes.IndexByte(buf, '\n')
	if line < len(proto)+3+1 || buf[line-1] != '\r' || string(buf[:len(proto)]) != proto {
		return nil
	}
	status := buf[len(proto) : line-1]
	code := 0
	for i := range 3 {
		c := status[i]
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || len(status) > 3 && status[3] != ' ' {
		return nil // 1xx, or a malformed status
	}
	for _, c := range status[3:] {
		if c < ' ' && c != '\t' || c >= 0x7f {
			return nil
		}
	}

	// Header lines: count and validate before copying anything.
	n := 0
	for i := line + 1; i < end+2; {
		j := i + bytes.IndexByte(buf[i:], '\n')
		if j < i+2 || buf[j-1] != '\r' || !simpleHeaderLine(buf[i:j-1]) {
			return nil
		}
		n++
		i = j + 1
	}

	s := string(buf[:headLen])
	h := make(http.Header, n)
	sr := new(simpleResponse)
	strs := sr.strs[:]
	if n+1 > len(strs) {
		strs = make([]string, n+1) // one value each, and TransferEncoding
	}
	for i := line + 1; i < end+2; {
		j := i + strings.IndexByte(s[i:], '\n')
		kv := s[i : j-1]
		i = j + 1
		colon := strings.IndexByte(kv, ':')
		key := canonicalKey(kv[:colon])
		value := trimOWS(kv[colon+1:])
		if vv := h[key]; vv != nil {
			h[key] = append(vv, value)
			continue
		}
		vv := strs[:1:1]
		strs = strs[1:]
		vv[0] = value
		h[key] = vv
	}
	if _, ok := h["Trailer"]; ok {
		return nil
	}
	if _, ok := h["Pragma"]; ok {
		return nil // fixPragmaCacheControl's rule: rare enough for net/http
	}

	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return nil
		}
		chunked = true
	}
	length := int64(-1)
	if cl, ok := h["Content-Length"]; ok {
		if chunked || len(cl) != 1 || len(cl[0]) == 0 || len(cl[0]) > 18 {
			return nil
		}
		length = 0
		for _, c := range []byte(cl[0]) {
			if c < '0' || c > '9' {
				return nil
			}
			length = length*10 + int64(c-'0')
		}
	}
	method := "GET"
	if req != nil && req.Method != "" {
		method = req.Method
	}
	noBody := method == "HEAD" || code == 204 || code == 304
	if noBody && chunked || !noBody && !chunked && length < 0 {
		return nil // odd framing, or a body up to the end of the stream
	}
	delete(h, "Transfer-Encoding")
	closing := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if closing {
		delete(h, "Connection")
	}

	resp := &sr.resp
	*resp = http.Response{
		Status:     s[len(proto) : line-1],
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Close:      closing,
		Request:    req,
	}
	switch {
	case method == "HEAD":
		resp.ContentLength = length
	case noBody:
		resp.ContentLength = 0
	case chunked:
		resp.ContentLength = -1
		strs[0] = "chunked"
		resp.TransferEncoding = strs[:1:1]
		sr.body.src = framedBody{br: br, chunks: httputil.NewChunkedReader(br), resp: resp}
		resp.Body = &sr.body
	default:
		resp.ContentLength = length
		if length > 0 {
			sr.body.src = framedBody{br: br, remain: length}
			resp.Body = &sr.body
		}
	}
	br.Discard(headLen)
	return resp
}

// simpleResponse holds what readSimpleResponse allocates besides the head
// and the Header map, in one allocation: the Response, its body, and room
// for the values of a small header.
type simpleResponse struct {
	resp http.Response
	body body
	strs [8]string
}

// simpleHeaderLine reports whether line (without its CRLF) is a header
// field that textproto reads as it is: a name of token characters, a
// colon, and a value of valid bytes.
func simpleHeaderLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range line[:colon] {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	for _, c := range line[colon+1:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// framedBody reads a response body framed by Content-Length (remain) or
// chunked (chunks) from br, as net/http's body does: an early end of the
// stream is io.ErrUnexpectedEOF, the data's last bytes come with io.EOF,
// and a chunked body's trailer is read into resp.Trailer.
type framedBody struct {
	br     *bufio.Reader
	remain int64          // Content-Length bytes not read yet
	chunks io.Reader      // httputil.NewChunkedReader(br), for chunked
	resp   *http.Response // whose Trailer gets the chunked trailer
	eof    bool
}

// errTrailerEOF is net/http's error for a stream ending in a trailer.
var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

func (f *framedBody) Read(p []byte) (int, error) {
	if f.eof {
		return 0, io.EOF
	}
	if f.chunks != nil {
		n, err := f.chunks.Read(p)
		if err == io.EOF {
			f.eof = true
			if terr := f.readTrailer(); terr != nil {
				f.eof = false
				f.chunks = eofReader{terr}
				err = terr
			}
		}
		return n, err
	}
	if f.remain == 0 {
		f.eof = true
		return 0, io.EOF
	}
	if int64(len(p)) > f.remain {
		p = p[:f.remain]
	}
	n, err := f.br.Read(p)
	f.remain -= int64(n)
	switch {
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	case err == nil && f.remain == 0:
		f.eof = true
		err = io.EOF
	}
	return n, err
}

// readTrailer reads what follows the last chunk, as net/http's body does.
func (f *framedBody) readTrailer() error {
	buf, err := f.br.Peek(2)
	if string(buf) == "\r\n" {
		f.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !upcomingDoubleCRLF(f.br) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(f.br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if f.resp.Trailer == nil {
		f.resp.Trailer = http.Header(hdr)
	} else {
		for k, v := range hdr {
			f.resp.Trailer[k] = v
		}
	}
	return nil
}

// upcomingDoubleCRLF reports whether br's buffer, filled as far as it
// goes, holds the end of a header block (net/http's bound on a trailer).
func upcomingDoubleCRLF(br *bufio.Reader) bool {
	for peekSize := 4; ; peekSize++ {
		buf, err := br.Peek(peekSize)
		if bytes.HasSuffix(buf, crlfcrlf) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// eofReader returns err for ever.
type eofReader struct{ err error }

func (r eofReader) Read([]byte) (int, error) { return 0, r.err }
