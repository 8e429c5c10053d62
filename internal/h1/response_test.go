package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// parsed is what a reader of a response head gave, with its body read.
type parsed struct {
	resp    *http.Response
	err     error
	body    string
	bodyErr error
	rest    string // what the reader held after the body
	fast    bool   // readSimpleResponse parsed the head
}

// parseWith parses raw as the answer to a method request with
// readResponse (engine) or http.ReadResponse, and reads the body.
func parseWith(raw []byte, method string, engine bool) parsed {
	br := bufio.NewReaderSize(bytes.NewReader(raw), BufferSize)
	br.Peek(1) // as exchange does before parsing
	req := &http.Request{Method: method}
	var p parsed
	if engine {
		// readResponse, telling which reader parsed the head.
		p.resp = readSimpleResponse(br, req)
		p.fast = p.resp != nil
		if !p.fast {
			p.resp, p.err = http.ReadResponse(br, req)
		}
	} else {
		p.resp, p.err = http.ReadResponse(br, req)
	}
	if p.err != nil {
		return p
	}
	var r io.Reader = p.resp.Body
	if b, ok := p.resp.Body.(*body); ok {
		r = &b.src
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	p.body, p.bodyErr = string(b), err
	rest, _ := io.ReadAll(br)
	p.rest = string(rest)
	return p
}

// diffResponses describes how the engine's reading of raw differs from
// net/http's, or returns "".
func diffResponses(raw []byte, method string) (string, parsed) {
	got, want := parseWith(raw, method, true), parseWith(raw, method, false)
	if (got.err == nil) != (want.err == nil) || got.err != nil && got.err.Error() != want.err.Error() {
		return fmt.Sprintf("error %v, net/http %v", got.err, want.err), got
	}
	if got.err != nil {
		return "", got
	}
	g, w := got.resp, want.resp
	type fields struct {
		Status           string
		StatusCode       int
		Proto            string
		Major, Minor     int
		Header           http.Header
		ContentLength    int64
		TransferEncoding []string
		Close            bool
		Uncompressed     bool
		Trailer          http.Header
		NoBody           bool
	}
	f := func(r *http.Response) fields {
		return fields{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header,
			r.ContentLength, r.TransferEncoding, r.Close, r.Uncompressed, r.Trailer, r.Body == http.NoBody}
	}
	if gf, wf := f(g), f(w); !reflect.DeepEqual(gf, wf) {
		return fmt.Sprintf("response\n%+v\nnet/http\n%+v", gf, wf), got
	}
	if got.body != want.body || fmt.Sprint(got.bodyErr) != fmt.Sprint(want.bodyErr) || got.rest != want.rest {
		return fmt.Sprintf("body %q (%v), then %q; net/http %q (%v), then %q",
			got.body, got.bodyErr, got.rest, want.body, want.bodyErr, want.rest), got
	}
	return "", got
}

// responseCorpus holds response heads, with whether readSimpleResponse
// is meant to parse them itself.
var responseCorpus = []struct {
	name, method, raw string
	fast              bool
}{
	{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", true},
	{"zero length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
	{"no headers 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", true},
	{"no reason", "GET", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", true},
	{"empty reason", "GET", "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx", true},
	{"next response buffered", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", true},
	{"lower-case names", "GET", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: a/b\r\nx-custom-thing: 1\r\n\r\nok", true},
	{"odd-case names", "GET", "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nx-REQUEST-id: 1\r\nETag: \"x\"\r\n\r\nok", true},
	{"repeated header", "GET", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\nset-cookie: b=2\r\nSet-Cookie: c=3\r\n\r\n", true},
	{"value spaces", "GET", "HTTP/1.1 200 OK\r\nX-A:   spaced \t \r\nX-B:\r\nX-C:\t\r\nContent-Length:  3  \r\n\r\nabc", true},
	{"obs-text value", "GET", "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\xff\r\nContent-Length: 0\r\n\r\n", true},
	{"leading zeros", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n1234567", true},
	{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true},
	{"connection tokens", "GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", true},
	{"connection keep-alive", "GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
	{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nnext", true},
	{"chunked upper", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", true},
	{"chunked trailer", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\nx-other: 2\r\n\r\n", true},
	{"chunked truncated", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true},
	{"chunked bad size", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", true},
	{"chunked trailer eof", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", true},
	{"chunked bad trailer", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", true},
	{"head with length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true},
	{"head without length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\n", true},
	{"204 with length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", true},
	{"304", "GET", "HTTP/1.1 304 Not Modified\r\nEtag: x\r\n\r\n", true},
	{"truncated body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true},
	{"status 999", "GET", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", true},

	// Left to net/http: accepted.
	{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
	{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false},
	{"until close", "GET", "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\nall of it", false},
	{"103 early hints", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"100 continue", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false},
	{"bare LF header", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", false},
	{"obs-fold", "GET", "HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nContent-Length: 2\r\n\r\nok", false},
	{"space before colon", "GET", "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok", false},
	{"duplicate equal lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
	{"chunked and length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"trailer declared", "GET", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Sum: 1\r\n\r\n", false},
	{"pragma", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", false},
	{"head chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	{"204 chunked", "GET", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	{"spaces after version", "GET", "HTTP/1.1   200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"big head", "GET", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\nContent-Length: 0\r\n\r\n", false},
	{"partial head", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},

	// Left to net/http: rejected.
	{"conflicting lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false},
	{"signed length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
	{"negative length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", false},
	{"empty length", "GET", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok", false},
	{"huge length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", false},
	{"gzip encoding", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", false},
	{"two encodings", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"encoding list", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
	{"NUL in value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", false},
	{"CR in value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", false},
	{"bad name byte", "GET", "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n", false},
	{"missing colon", "GET", "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n", false},
	{"empty name", "GET", "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n", false},
	{"leading space first line", "GET", "HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: 0\r\n\r\n", false},
	{"short status", "GET", "HTTP/1.1 20 OK\r\n\r\n", false},
	{"signed status", "GET", "HTTP/1.1 +20 OK\r\n\r\n", false},
	{"bad version", "GET", "HTTP/x.y 200 OK\r\n\r\n", false},
	{"no status", "GET", "HTTP/1.1\r\n\r\n", false},
	{"empty", "GET", "", false},
}

// TestReadSimpleResponse compares readResponse with http.ReadResponse on
// the corpus: same fields, body, framing and errors, and checks which
// heads the simple reader takes itself.
func TestReadSimpleResponse(t *testing.T) {
	for _, tc := range responseCorpus {
		t.Run(tc.name, func(t *testing.T) {
			diff, got := diffResponses([]byte(tc.raw), tc.method)
			if diff != "" {
				t.Fatal(diff)
			}
			if got.fast != tc.fast && got.err == nil {
				t.Fatalf("parsed by the simple reader: %v, want %v", got.fast, tc.fast)
			}
			if tc.fast && got.err != nil {
				t.Fatalf("error %v", got.err)
			}
		})
	}
}

// TestCanonicalKey checks the canonical names against textproto's.
func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"content-length", "Content-Length", "CONTENT-LENGTH", "x-a-b", "X-A-B", "etag",
		"a", "-x", "x--y", "www-authenticate", strings.Repeat("ab-", 20), "x_y", "Foo1-bAR"} {
		want := http.CanonicalHeaderKey(k)
		if got := canonicalKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { canonicalKey("content-type") }); n != 0 {
		t.Errorf("common name: %v allocations", n)
	}
}

// FuzzReadSimpleResponse checks that readResponse accepts and rejects
// what http.ReadResponse does, with the same fields, body and framing.
func FuzzReadSimpleResponse(f *testing.F) {
	for _, tc := range responseCorpus {
		if len(tc.raw) < 4<<10 {
			f.Add([]byte(tc.raw), tc.method == "HEAD")
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		if diff, _ := diffResponses(raw, method); diff != "" {
			t.Fatalf("%q: %s", raw, diff)
		}
	})
}

// TestSimpleResponseOverTheWire reads responses of a real server of each
// framing through the engine and net/http's Transport, on one keep-alive
// connection for the engine, and compares them.
func TestSimpleResponseOverTheWire(t *testing.T) {
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["x-lower"] = []string{"raw case"} // sent as it is
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		switch r.URL.Path {
		case "/length":
			h.Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/chunked":
			h.Set("Trailer", "X-Sum")
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			h.Set("X-Sum", "42")
		case "/undeclared-trailer":
			io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			h.Set(http.TrailerPrefix+"X-Late", "yes")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/big":
			io.WriteString(w, strings.Repeat("0123456789", 10000))
		case "/close":
			h.Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	tr := newTestTransport(t, 0)

	type result struct {
		Code          int
		Header        http.Header
		Trailer       http.Header
		Body          string
		ContentLength int64
		Close         bool
	}
	do := func(rt http.RoundTripper, method, path string) result {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		resp.Header.Del("Date")
		return result{resp.StatusCode, resp.Header, resp.Trailer, string(b), resp.ContentLength, resp.Close}
	}
	paths := []string{"/length", "/chunked", "/undeclared-trailer", "/empty", "/big", "/length"}
	for _, method := range []string{"GET", "HEAD"} {
		for _, path := range paths {
			got, want := do(tr, method, path), do(tr.fallbackTransport(), method, path)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s:\n%+v\nnet/http:\n%+v", method, path, got, want)
			}
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want one for each transport", n)
	}
	if got := do(tr, "GET", "/close"); !got.Close || got.Body != "bye" || got.Header.Get("Connection") != "" {
		t.Errorf("Connection: close answer: %+v", got)
	}
	if n := tr.idleConns(ln.Addr().String()); n != 0 {
		t.Errorf("%d idle connections after Connection: close", n)
	}
}

// BenchmarkReadResponse parses a typical response head with its small
// body, with readResponse and with http.ReadResponse.
func BenchmarkReadResponse(b *testing.B) {
	raw := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Date: Thu, 03 Dec 2026 06:00:00 GMT\r\nServer: backend\r\nCache-Control: no-store\r\n" +
		"X-Request-Id: 0123456789abcdef\r\nContent-Length: 2\r\n\r\nok")
	req := &http.Request{Method: "GET"}
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"engine", readResponse}, {"net-http", http.ReadResponse}} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(raw)
			br := bufio.NewReaderSize(r, BufferSize)
			var buf [64]byte
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(raw)
				br.Reset(r)
				br.Peek(1)
				resp, err := bc.read(br, req)
				if err != nil {
					b.Fatal(err)
				}
				var rd io.Reader = resp.Body
				if fb, ok := resp.Body.(*body); ok {
					rd = &fb.src
				}
				if n, _ := io.ReadFull(rd, buf[:]); n != 2 {
					b.Fatalf("body of %d bytes", n)
				}
			}
		})
	}
}
