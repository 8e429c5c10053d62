package lb_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// This file holds two HTTP/1.1 request parsers for the framing tests: a
// deliberately lenient one, as servers behind a proxy too often are, and a
// strict one that accepts only the canonical framing a proxy should send.
// Where both accept the bytes a server received, they must agree on where
// each request ends; otherwise one request could hide another.

// errIncomplete is the error of a parser that needs more bytes.
var errIncomplete = errors.New("incomplete request")

// lenientRequest is a request as the lenient parser read it.
type lenientRequest struct {
	Method, Target, Proto string
	Header                [][2]string // in order, names as sent (trimmed)
	Chunked               bool
	Body                  []byte // decoded
	Len                   int    // bytes of the request, body included
}

// get returns the first value of the field name (case-insensitive).
func (r *lenientRequest) get(name string) (string, bool) {
	for _, f := range r.Header {
		if strings.EqualFold(f[0], name) {
			return f[1], true
		}
	}
	return "", false
}

// lenientLine returns the line at the start of data, ending at LF with an
// optional CR before it, and the bytes it spans.
func lenientLine(data []byte) (line []byte, n int, err error) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if len(data) > 64<<10 {
			return nil, 0, errors.New("line too long")
		}
		return nil, 0, errIncomplete
	}
	return bytes.TrimSuffix(data[:i], []byte("\r")), i + 1, nil
}

// parseLenient parses the request at the start of data the way lenient
// servers do: bare LF ends lines, obs-fold continues a field, white space
// before the colon is ignored, the first Content-Length wins (sign and
// spaces allowed), Transfer-Encoding naming "chunked" anywhere wins over
// Content-Length, chunk sizes take a "0x" prefix and spaces, extensions
// are cut at ";", and the line after chunk data is skipped whatever it
// holds. It returns errIncomplete when data ends first.
func parseLenient(data []byte) (lenientRequest, error) {
	var r lenientRequest
	off := 0
	line, n, err := lenientLine(data)
	if err != nil {
		return r, err
	}
	off += n
	parts := strings.Fields(string(line))
	if len(parts) < 2 {
		return r, fmt.Errorf("bad request line %q", line)
	}
	r.Method, r.Target = parts[0], parts[1]
	if len(parts) > 2 {
		r.Proto = parts[2]
	}
	for {
		line, n, err := lenientLine(data[off:])
		if err != nil {
			return r, err
		}
		off += n
		if len(line) == 0 {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(r.Header) > 0 {
			last := &r.Header[len(r.Header)-1]
			last[1] += " " + strings.TrimSpace(string(line))
			continue
		}
		name, value, _ := strings.Cut(string(line), ":")
		r.Header = append(r.Header, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	for _, f := range r.Header {
		if strings.EqualFold(f[0], "Transfer-Encoding") && strings.Contains(strings.ToLower(f[1]), "chunked") {
			r.Chunked = true
		}
	}
	if r.Chunked {
		for {
			line, n, err := lenientLine(data[off:])
			if err != nil {
				return r, err
			}
			off += n
			size, _, _ := strings.Cut(string(line), ";")
			size = strings.TrimSpace(size)
			size = strings.TrimPrefix(strings.TrimPrefix(size, "0x"), "0X")
			sz, err := strconv.ParseUint(size, 16, 31)
			if err != nil {
				return r, fmt.Errorf("bad chunk size %q", line)
			}
			if sz == 0 {
				for { // trailer fields, up to an empty line
					line, n, err := lenientLine(data[off:])
					if err != nil {
						return r, err
					}
					off += n
					if len(line) == 0 {
						r.Len = off
						return r, nil
					}
				}
			}
			if len(data)-off < int(sz) {
				return r, errIncomplete
			}
			r.Body = append(r.Body, data[off:off+int(sz)]...)
			off += int(sz)
			_, n, err = lenientLine(data[off:]) // should be empty
			if err != nil {
				return r, err
			}
			off += n
		}
	}
	if v, ok := r.get("Content-Length"); ok {
		cl, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || cl < 0 {
			return r, fmt.Errorf("bad Content-Length %q", v)
		}
		if int64(len(data)-off) < cl {
			return r, errIncomplete
		}
		r.Body = append(r.Body, data[off:off+int(cl)]...)
		off += int(cl)
	}
	r.Len = off
	return r, nil
}

// strictLine returns the line at the start of data, which must end in
// CRLF, with no other CR or LF, and the bytes it spans.
func strictLine(data []byte) (line []byte, n int, err error) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if bytes.IndexByte(data, '\r') >= 0 && bytes.IndexByte(data, '\r') < len(data)-1 {
			return nil, 0, errors.New("bare CR")
		}
		return nil, 0, errIncomplete
	}
	if i == 0 || data[i-1] != '\r' {
		return nil, 0, errors.New("bare LF")
	}
	line = data[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, 0, errors.New("bare CR")
	}
	return line, i + 1, nil
}

// parseStrict parses the request at the start of data and accepts only the
// canonical framing: CRLF line endings, an origin-form or asterisk target,
// HTTP/1.1, token field names with the colon right after them, no
// obs-fold, at most one Content-Length of digits only, Transfer-Encoding
// exactly "chunked" and then no Content-Length, chunk sizes of hex digits
// without extensions, valid trailer fields. It returns the request's length,
// or errIncomplete when data ends first.
func parseStrict(data []byte) (int, error) {
	line, off, err := strictLine(data)
	if err != nil {
		return 0, err
	}
	parts := strings.Split(string(line), " ")
	if len(parts) != 3 || !httpguts.ValidHeaderFieldName(parts[0]) || parts[2] != "HTTP/1.1" ||
		!(strings.HasPrefix(parts[1], "/") || parts[1] == "*") {
		return 0, fmt.Errorf("bad request line %q", line)
	}
	for _, c := range []byte(parts[1]) {
		if c <= ' ' || c >= 0x7f {
			return 0, fmt.Errorf("bad target %q", parts[1])
		}
	}
	cl, te := -1, false
	host := 0
	for {
		line, n, err := strictLine(data[off:])
		if err != nil {
			return 0, err
		}
		off += n
		if len(line) == 0 {
			break
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			return 0, fmt.Errorf("bad field line %q", line)
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return 0, fmt.Errorf("bad field value %q", line)
		}
		switch {
		case strings.EqualFold(name, "Host"):
			host++
		case strings.EqualFold(name, "Content-Length"):
			if cl >= 0 || value == "" || strings.Trim(value, "0123456789") != "" || len(value) > 18 {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
			cl, _ = strconv.Atoi(value)
		case strings.EqualFold(name, "Transfer-Encoding"):
			if te || value != "chunked" {
				return 0, fmt.Errorf("bad Transfer-Encoding %q", value)
			}
			te = true
		}
	}
	if host != 1 {
		return 0, fmt.Errorf("%d Host fields", host)
	}
	if te && cl >= 0 {
		return 0, errors.New("Transfer-Encoding and Content-Length")
	}
	if cl > 0 {
		if len(data)-off < cl {
			return 0, errIncomplete
		}
		off += cl
	}
	if !te {
		return off, nil
	}
	for {
		line, n, err := strictLine(data[off:])
		if err != nil {
			return 0, err
		}
		off += n
		if len(line) == 0 || len(line) > 8 || strings.Trim(string(line), "0123456789abcdefABCDEF") != "" {
			return 0, fmt.Errorf("bad chunk size line %q", line)
		}
		sz, _ := strconv.ParseUint(string(line), 16, 32)
		if sz == 0 {
			for { // trailer fields, up to an empty line
				line, n, err := strictLine(data[off:])
				if err != nil {
					return 0, err
				}
				off += n
				if len(line) == 0 {
					return off, nil
				}
				name, value, ok := strings.Cut(string(line), ":")
				if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(strings.Trim(value, " \t")) {
					return 0, fmt.Errorf("bad trailer line %q", line)
				}
			}
		}
		if uint64(len(data)-off) < sz+2 {
			return 0, errIncomplete
		}
		off += int(sz)
		if string(data[off:off+2]) != "\r\n" {
			return 0, errors.New("no CRLF after chunk data")
		}
		off += 2
	}
}
