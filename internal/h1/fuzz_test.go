package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
)

// FuzzWriteRequest checks that a request validate accepts is written as
// exactly one HTTP/1.1 request that net/http reads back with the same
// method, target and header value: no field can smuggle a line or a
// second request to the server.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/a/b?x=1", "example.com", "X-Test", "v")
	f.Add("POST", "/", "example.com:8080", "Accept", " text/html \t")
	f.Add("", "/%41?", "[fe80::1%25eth0]:80", "X-A", "")
	f.Add("GET", "/", "bücher.example", "X-Unicode", "\x80\xff")
	f.Add("GET", "/\r\nX-Injected: 1", "h", "X-B", "a\r\nX-Injected: 1")
	f.Add("G\nET", "/", "h\r\n", "X\x00", "v")
	f.Add("PUT", "//double//slash?q=%zz", "h:0", "Connection", "close")
	f.Fuzz(func(t *testing.T, method, target, host, key, value string) {
		if strings.Contains(target, " ") || !strings.HasPrefix(target, "/") {
			return // not an origin-form target a server reads from a request line
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		u.Scheme, u.Host = "http", "backend.test"
		req := &http.Request{
			Method: method,
			URL:    u,
			Host:   host,
			Header: http.Header{key: {value}},
		}
		hostHeader, err := validate(req)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		pc := &serverConn{bw: bufio.NewWriter(&buf)}
		if err := pc.writeRequest(req, hostHeader, false); err != nil {
			t.Fatalf("writeRequest: %v", err)
		}
		wire := buf.String()
		br := bufio.NewReader(&buf)
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http cannot read %q: %v", wire, err)
		}
		if br.Buffered() > 0 || buf.Len() > 0 {
			t.Fatalf("%q holds more than one request", wire)
		}
		wantMethod := method
		if wantMethod == "" {
			wantMethod = "GET"
		}
		if got.Method != wantMethod {
			t.Fatalf("method %q read back as %q from %q", wantMethod, got.Method, wire)
		}
		if want := u.RequestURI(); got.RequestURI != want {
			t.Fatalf("target %q read back as %q from %q", want, got.RequestURI, wire)
		}
		if strings.ContainsAny(got.Host, "\r\n%") {
			t.Fatalf("host %q sent from %q", got.Host, host)
		}
		switch ck := textproto.CanonicalMIMEHeaderKey(key); ck {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
		default:
			if vv := got.Header[ck]; len(vv) != 1 || vv[0] != textproto.TrimString(value) {
				t.Fatalf("header %q: %q read back as %q from %q", key, value, vv, wire)
			}
		}
	})
}
