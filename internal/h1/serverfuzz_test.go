package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FuzzServerRequestLine checks parseRequestLine against net/http: a line
// it accepts, http.ReadRequest accepts with the same method, target and
// version.
func FuzzServerRequestLine(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1", "OPTIONS * HTTP/1.0", "CONNECT a:443 HTTP/1.1",
		"GET http://h/x?q HTTP/1.1", "G(T / HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/2.0", "GET /\x01 HTTP/1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		rl, err := parseRequestLine(line)
		if err != nil || rl.method != "CONNECT" && !validTarget(rl.target) {
			return // readRequest checks the target with url.ParseRequestURI
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(line + "\r\nHost: h\r\n\r\n")))
		if err != nil {
			if rl.method == "CONNECT" {
				return
			}
			t.Fatalf("net/http refuses %q (%v)", line, err)
		}
		if req.Method != rl.method || req.RequestURI != rl.target || req.ProtoMajor != rl.major || req.ProtoMinor != rl.minor {
			t.Fatalf("%q: %+v, net/http %s %s %d.%d", line, rl, req.Method, req.RequestURI, req.ProtoMajor, req.ProtoMinor)
		}
	})
}

// FuzzServerHeader checks the header block parsers against net/http: a
// head they accept, http.ReadRequest accepts too, with the same fields
// and body framing.
func FuzzServerHeader(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\nX-A: b\n c\n\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nTrailer: X-T\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: h\r\nx-lower-case: v\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		end, _ := scanHeaderEnd([]byte(head), 0)
		if end < 0 {
			return
		}
		head = head[:end]
		mine := new(http.Request)
		if _, err := parseRequest(head, mine, new(url.URL)); err != nil {
			return
		}
		h := mine.Header
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("net/http refuses %q (%v)", head, err)
		}
		if !reflect.DeepEqual(mine.URL, req.URL) {
			t.Fatalf("%q: URL %#v, net/http %#v", head, mine.URL, req.URL)
		}
		// Host, as other values (below), may end in a folded line's space
		// with net/http.
		if mine.ContentLength != req.ContentLength || mine.Host != strings.TrimRight(req.Host, " \t") || mine.Close != req.Close ||
			len(mine.TransferEncoding) != len(req.TransferEncoding) {
			t.Fatalf("%q: %+v\nnet/http %+v", head, mine, req)
		}
		if len(h) != len(req.Header) {
			t.Fatalf("%q: header %q, net/http %q", head, h, req.Header)
		}
		// net/http keeps the space of a folded line that holds nothing
		// else ("a\r\n \r\n" gives "a ", "a\r\n \r\n b" gives "a  b");
		// the server ends a value before it (RFC 9110, section 5.5) and
		// replaces each fold by one space (RFC 9112, section 5.2): values
		// compare with their runs of white space as one space.
		squeeze := func(vv []string) string {
			out := make([]string, len(vv))
			for i, v := range vv {
				out[i] = strings.Join(strings.Fields(v), " ")
			}
			return strings.Join(out, "\x00")
		}
		for k, vv := range req.Header {
			if squeeze(h[k]) != squeeze(vv) {
				t.Fatalf("%q: %s %q, net/http %q", head, k, h[k], vv)
			}
		}
	})
}

func validTarget(target string) bool {
	_, err := url.ParseRequestURI(target)
	return err == nil
}

// memConn is a net.Conn that reads from r, for the body readers.
type memConn struct {
	net.Conn
	r io.Reader
}

func (c memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c memConn) SetReadDeadline(time.Time) error  { return nil }
func (c memConn) SetWriteDeadline(time.Time) error { return nil }
func (c memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c memConn) Close() error                     { return nil }
func (c memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c memConn) SetDeadline(t time.Time) error    { return nil }
func (c memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c memConn) CloseWrite() error                { return nil }

// readChunkedBody decodes data as a chunked body with the server's reader,
// in reads of size bytes.
func readChunkedBody(data []byte, size int) ([]byte, error) {
	c := &srvConn{rwc: memConn{r: bytes.NewReader(data)}, rbuf: make([]byte, serverBufSize)}
	w := &srvResponse{c: c, req: &http.Request{}}
	b := &w.body
	b.c, b.w, b.chunked = c, w, true
	c.srv = &Server{Config: &http.Server{}}
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := b.readLocked(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// FuzzServerChunked checks the chunked body reader against net/http's
// (httputil.NewChunkedReader): a body it accepts, net/http's decodes to
// the same bytes.
func FuzzServerChunked(f *testing.F) {
	for _, s := range []string{"5\r\nhello\r\n0\r\n\r\n", "5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "A \r\n0123456789\r\n0\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n", "3\r\nhello\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n", "2;a=\"\r\nxx\r\n0\r\n\r\n"} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		got, err := readChunkedBody(data, int(size)+1)
		if err != nil {
			return
		}
		want, werr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data)))
		if werr != nil || !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q; net/http %q, %v", data, got, want, werr)
		}
	})
}

// FuzzServerHost checks the server's Host check (validHost, a fast path
// before httpguts) against httpguts.ValidHostHeader, which net/http uses.
func FuzzServerHost(f *testing.F) {
	for _, s := range []string{"lb.test", "lb.test:8080", "[::1]:80", "a b", "h\x00", "bücher.example", "", "x_y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if got, want := validHost(host), httpguts.ValidHostHeader(host); got != want {
			t.Fatalf("validHost(%q) = %v, httpguts %v", host, got, want)
		}
	})
}

// FuzzOriginForm: a target parseOriginForm takes gives the URL that
// url.ParseRequestURI gives it.
func FuzzOriginForm(f *testing.F) {
	for _, s := range []string{"/", "/a/b?x=1", "/a?", "/a??", "/a?b?c", "/%41", "/a b", "/a!", "//x/y", "/a?#f",
		"/a;b=c,d@e:f$g&h+i~j", "*", "http://h/p", "/é", "/a?é", "/a?x\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var u url.URL
		if !parseOriginForm(target, &u) {
			return
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: taken, but url.ParseRequestURI refuses it: %v", target, err)
		}
		if !reflect.DeepEqual(&u, want) {
			t.Fatalf("%q: %#v, url.ParseRequestURI %#v", target, u, *want)
		}
	})
}

// TestChunkedWithContentLength: beside chunked, a Content-Length is
// dropped when valid and refused otherwise, as net/http does.
func TestChunkedWithContentLength(t *testing.T) {
	for _, tc := range []struct {
		cl string
		ok bool
	}{{"5", true}, {"", false}, {"x", false}, {"5\r\nContent-Length: 6", false}, {"5\r\nContent-Length: 5", true}} {
		head := "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: " + tc.cl + "\r\n\r\n"
		req := new(http.Request)
		fr, err := parseRequest(head, req, new(url.URL))
		_, nerr := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if (err == nil) != tc.ok || (nerr == nil) != tc.ok {
			t.Errorf("Content-Length %q: error %v (net/http: %v), want ok=%v", tc.cl, err, nerr, tc.ok)
		}
		if err == nil && (!fr.chunked || req.Header["Content-Length"] != nil) {
			t.Errorf("Content-Length %q: chunked %v, fields %v", tc.cl, fr.chunked, req.Header)
		}
	}
}
