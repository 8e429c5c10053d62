package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// forwardCases are requests, sent raw to a proxy, and the raw responses a
// server answers them with, for TestForwardMatchesHTTPUtil. The server
// reads requests without bodies.
var forwardCases = []struct {
	name, req, resp string
}{
	{"plain",
		"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"},
	{"no user agent",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n"},
	{"hop-by-hop and forwarding fields",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret, close-ish\r\nX-Secret: 1\r\nClose-Ish: 2\r\n" +
			"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nTE: gzip\r\n" +
			"Forwarded: for=1.2.3.4\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n" +
			"X-Forwarded-Port: 1\r\nX-Kept: yes\r\nX-Kept: twice\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n" +
			"X-Multi: a\r\nX-Multi: b\r\nContent-Length: 0\r\n\r\n"},
	{"connection close",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nClose: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
	{"te trailers",
		"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers, deflate\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n"},
	{"unannounced trailer",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Late: 1\r\n\r\n"},
	{"semicolon query",
		"GET /q?a=1;b=2&c=%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"bad escape query",
		"GET /q?a=%4 HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"event stream",
		"GET /events HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\nContent-Length: 12\r\n\r\ndata: one\r\n\r\n"},
	{"early hints",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"},
	{"server error",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy"},
}

// TestForwardMatchesHTTPUtil sends each of forwardCases through a
// ReverseProxy twice: by its own forwarding path (FlushInterval 0), and by
// httputil.ReverseProxy, which it uses with a positive FlushInterval. The
// server must see the same request head, and the client get the same
// response (status, fields, body, trailers), but for the order of fields.
// Streamed responses carry their Content-Type: httputil flushes their
// header on a timer, which races with the client's server sniffing one
// from the first bytes.
//
// It runs under net/http's server and under HTTPFrontend's, to which the
// forwarding path hands the response's header map instead of copying it.
func TestForwardMatchesHTTPUtil(t *testing.T) {
	for _, front := range []string{"net/http", "HTTPFrontend"} {
		for _, tc := range forwardCases {
			t.Run(front+"/"+tc.name, func(t *testing.T) {
				testForwardMatches(t, front, tc.req, tc.resp)
			})
		}
	}
}

func testForwardMatches(t *testing.T, front, req, resp string) {
	own := forwardOnce(t, front, req, resp, 0)
	ref := forwardOnce(t, front, req, resp, time.Hour)
	if !reflect.DeepEqual(own.head, ref.head) {
		t.Errorf("request line and fields sent to the server:\nforward:  %v\nhttputil: %v", own.head, ref.head)
	}
	if !reflect.DeepEqual(own.resp, ref.resp) {
		t.Errorf("response to the client:\nforward:  %v\nhttputil: %v", own.resp, ref.resp)
	}
	if own.resp.status == 0 {
		t.Fatal("no response")
	}
}

// forwarded is what one request through a proxy gave: the request head
// the server read (the request line, then each field line, sorted), and
// the response the client read.
type forwarded struct {
	head []string
	resp rawResponse
}

type rawResponse struct {
	status  int
	header  http.Header
	body    string
	trailer http.Header
	hints   []string // the 1xx responses, as status and Link
}

func forwardOnce(t *testing.T, front, req, resp string, flush time.Duration) forwarded {
	t.Helper()
	heads := make(chan []string, 1)
	srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var lines []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
			lines = append(lines, strings.TrimRight(line, "\r\n"))
		}
		if len(lines) > 1 {
			slices.Sort(lines[1:])
		}
		heads <- lines
		io.WriteString(c, resp)
	})
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool, FlushInterval: flush}
	defer proxy.CloseIdleConnections()
	var addr string
	if front == "HTTPFrontend" {
		fe, err := NewHTTPFrontend(&http.Server{Handler: proxy})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go fe.Serve(ln)
		defer fe.Close()
		addr = ln.Addr().String()
	} else {
		srv := httptest.NewServer(proxy)
		defer srv.Close()
		addr = srv.Listener.Addr().String()
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out forwarded
	for {
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		if r.StatusCode < 200 {
			out.resp.hints = append(out.resp.hints, r.Status+" "+r.Header.Get("Link"))
			continue
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("reading the response body: %v", err)
		}
		h := r.Header.Clone()
		delete(h, "Date")
		out.resp = rawResponse{status: r.StatusCode, header: h, body: string(b), trailer: r.Trailer, hints: out.resp.hints}
		break
	}
	select {
	case out.head = <-heads:
	case <-time.After(5 * time.Second):
		t.Fatal("the server got no request")
	}
	for i, l := range out.head {
		// The client's address and port differ between the two runs.
		if strings.HasPrefix(l, "X-Forwarded-Port:") || strings.HasPrefix(l, "X-Forwarded-Host:") {
			out.head[i], _, _ = strings.Cut(l, ":")
		}
	}
	return out
}

// TestCleanQuery checks the query cleaning of the forwarding path against
// the rule it follows: a query url.ParseQuery reads without error passes
// as it is, any other is re-encoded from what ParseQuery keeps.
func TestCleanQuery(t *testing.T) {
	for _, q := range []string{"", "a=1", "a=1&b=%20", "a=1;b=2", "a=%zz", "a=%4", "a=%", "x&&y", "%41=%42",
		strings.Repeat("a&", maxQueryParams), strings.Repeat("a&", maxQueryParams-1) + "a"} {
		want := q
		if v, err := url.ParseQuery(q); err != nil || strings.Count(q, "&")+1 > maxQueryParams {
			want = v.Encode()
		}
		if got := cleanQuery(q); got != want {
			t.Errorf("cleanQuery(%.40q) = %.40q, want %.40q", q, got, want)
		}
	}
}
