package lb_test

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// lenientServer is a raw HTTP/1.1 server that parses requests with
// parseLenient, answers each 200 "ok", and records the exact bytes of
// every connection.
type lenientServer struct {
	*testutil.RawServer
	mu    sync.Mutex
	conns []*lenientConn
	got   chan struct{} // a signal per read that returned bytes
}

// lenientConn is what one connection to a lenientServer carried.
type lenientConn struct {
	raw    []byte
	reqs   []lenientRequest
	err    error // why the connection ended (io.EOF: the proxy closed it)
	closed bool
}

func startLenient(t *testing.T) *lenientServer {
	s := &lenientServer{got: make(chan struct{}, 1024)}
	s.RawServer = testutil.StartRaw(t, s.serve)
	return s
}

func (s *lenientServer) serve(c net.Conn, _ *bufio.Reader) {
	rec := &lenientConn{}
	s.mu.Lock()
	s.conns = append(s.conns, rec)
	s.mu.Unlock()
	var pending []byte
	buf := make([]byte, 4096)
	for {
		for {
			r, err := parseLenient(pending)
			if errors.Is(err, errIncomplete) {
				break
			}
			if err != nil {
				s.end(rec, err)
				return
			}
			s.mu.Lock()
			rec.reqs = append(rec.reqs, r)
			s.mu.Unlock()
			pending = pending[r.Len:]
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				s.end(rec, err)
				return
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if n > 0 {
			s.mu.Lock()
			rec.raw = append(rec.raw, buf[:n]...)
			s.mu.Unlock()
			pending = append(pending, buf[:n]...)
			select {
			case s.got <- struct{}{}:
			default:
			}
		}
		if err != nil {
			s.end(rec, err)
			return
		}
	}
}

func (s *lenientServer) end(rec *lenientConn, err error) {
	s.mu.Lock()
	rec.err, rec.closed = err, true
	s.mu.Unlock()
}

// snapshot returns copies of the connection records.
func (s *lenientServer) snapshot() []lenientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]lenientConn, len(s.conns))
	for i, c := range s.conns {
		out[i] = *c
		out[i].raw = append([]byte(nil), c.raw...)
		out[i].reqs = append([]lenientRequest(nil), c.reqs...)
	}
	return out
}

// rawBytes returns every byte the server received, over all connections.
func (s *lenientServer) rawBytes() string {
	var b strings.Builder
	for _, c := range s.snapshot() {
		b.Write(c.raw)
	}
	return b.String()
}

// framingProxy starts a ReverseProxy to srv behind a loopback http.Server,
// configured by setup, and returns its address.
func framingProxy(t *testing.T, srv *lenientServer, setup func(*lb.ReverseProxy)) (*lb.ReverseProxy, *lb.Pool, string) {
	t.Helper()
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "s1", Addr: srv.Addr}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	if setup != nil {
		setup(proxy)
	}
	url, _ := startL7(t, proxy, time.Second)
	return proxy, pool, strings.TrimPrefix(url, "http://")
}

// rawExchange sends req on a new connection to addr and reads one
// response; the body is read in full.
func rawExchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	var resp *http.Response
	for resp == nil || resp.StatusCode < 200 { // 100 Continue before the answer
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response to %q: %v", req, err)
		}
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// checkUnambiguous checks what the server received over each connection:
// the lenient and the strict parser find the same requests, end to end,
// and there are want of them in all.
func checkUnambiguous(t *testing.T, conns []lenientConn, want int) {
	t.Helper()
	total := 0
	for i, c := range conns {
		data := c.raw
		for j, lr := range c.reqs {
			n, err := parseStrict(data)
			if err != nil {
				t.Errorf("conn %d request %d is not canonical (%v):\n%q", i, j, err, data)
				return
			}
			if n != lr.Len {
				t.Errorf("conn %d request %d: strict length %d, lenient %d:\n%q", i, j, n, lr.Len, data)
				return
			}
			data = data[n:]
		}
		if len(data) != 0 {
			t.Errorf("conn %d: %d bytes after the last request the lenient server found: %q", i, len(data), data)
		}
		total += len(c.reqs)
	}
	if total != want {
		t.Errorf("the server found %d requests, want %d", total, want)
	}
}

const chunkedHead = "POST /up HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\n\r\n"

// TestFramingCorpus sends malformed and ambiguous requests raw to a
// ReverseProxy in front of a lenient server. Rejected requests must get
// their status and send nothing at all to the server; accepted ones must
// reach it in one unambiguous framing, on which a lenient and a strict
// parser agree.
func TestFramingCorpus(t *testing.T) { forEngines(t, testFramingCorpus) }

func testFramingCorpus(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-F")
			b.WriteString(string(rune('a' + i%26)))
			b.WriteString(string(rune('a' + i/26)))
			b.WriteString(": v\r\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name   string
		req    string
		status int    // the client's status
		body   string // for accepted requests: the body the server decoded
		check  func(t *testing.T, r lenientRequest)
	}{
		// Chunked framing (RFC 9112 section 7.1).
		{name: "chunk size bad char", req: chunkedHead + "5g\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size 0x prefix", req: chunkedHead + "0x5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size leading space", req: chunkedHead + " 5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size negative", req: chunkedHead + "-5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size overflow", req: chunkedHead + "10000000000000005\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size empty", req: chunkedHead + "\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk line bare LF", req: chunkedHead + "5\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk line bare CR", req: chunkedHead + "5\rhello\r\n0\r\n\r\n", status: 400},
		{name: "last chunk bare LF", req: chunkedHead + "5\r\nhello\r\n0\n\r\n", status: 400},
		{name: "chunk data longer than size", req: chunkedHead + "3\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk data shorter than size", req: chunkedHead + "8\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "no CRLF after chunk data", req: chunkedHead + "5\r\nhello0\r\n\r\n", status: 400},
		{name: "bare LF after chunk data", req: chunkedHead + "5\r\nhello\n0\r\n\r\n", status: 400},
		{name: "quoted CRLF in extension", req: chunkedHead + "5;a=\"x\r\ny\"\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "second chunk invalid", req: chunkedHead + "5\r\nhello\r\nzz\r\nab\r\n0\r\n\r\n", status: 400},
		// Extensions are discarded unchecked by net/http: the server gets
		// the body re-framed, without them.
		{name: "chunk extension", req: chunkedHead + "5;name=val\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello"},
		{name: "unterminated quoted extension", req: chunkedHead + "2;a=\"\r\nxx\r\n0\r\n\r\n", status: 200, body: "xx"},
		{name: "extension hides a request", req: chunkedHead + "2;a=\"\r\nxx\r\n0\r\n\r\n\"\r\n0\r\n\r\n", status: 200, body: "xx"},
		{name: "chunked with trailer", req: chunkedHead + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", status: 200, body: "hello"},
		{name: "chunked empty", req: chunkedHead + "0\r\n\r\n", status: 200, body: ""},
		{name: "chunk size upper case, trailing space", req: chunkedHead + "A \r\n0123456789\r\n0\r\n\r\n", status: 200, body: "0123456789"},

		// Field lines (RFC 9112 section 5).
		{name: "space before colon", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX-A : b\r\n\r\n", status: 400},
		{name: "TE space before colon", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 400},
		{name: "invalid name char", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX(A): b\r\n\r\n", status: 400},
		{name: "empty name", req: "GET / HTTP/1.1\r\nHost: lb.test\r\n: b\r\n\r\n", status: 400},
		{name: "no colon", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX-A b\r\n\r\n", status: 400},
		{name: "bare CR in value", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX-A: b\rX-B: c\r\n\r\n", status: 400},
		{name: "NUL in value", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX-A: b\x00c\r\n\r\n", status: 400},
		// net/http replaces obs-fold with a space, as RFC 9112 section 5.2
		// lets a proxy do before forwarding.
		{name: "obs-fold", req: "GET / HTTP/1.1\r\nHost: lb.test\r\nX-A: b\r\n c\r\n\r\n", status: 200, body: "",
			check: func(t *testing.T, r lenientRequest) {
				if v, _ := r.get("X-A"); v != "b c" {
					t.Errorf("server got X-A %q", v)
				}
			}},
		{name: "obs-fold of TE", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 3\r\nTransfer-Encoding: x\r\n chunked\r\n\r\nabc", status: 501},
		{name: "first line folded", req: "GET / HTTP/1.1\r\n X-A: b\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "no Host", req: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two Hosts", req: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400},
		{name: "bare LF line endings", req: "GET /lf HTTP/1.1\nHost: lb.test\nX-A: b\n\n", status: 200, body: "",
			check: func(t *testing.T, r lenientRequest) {
				if v, _ := r.get("X-A"); r.Target != "/lf" || v != "b" {
					t.Errorf("server got %+v", r)
				}
			}},
		{name: "bare LF after request line", req: "GET / HTTP/1.1\nHost: lb.test\r\n\r\n", status: 200, body: ""},
		{name: "bare CR in request line", req: "GET / HTTP/1.1\rHost: lb.test\r\n\r\n", status: 400},

		// Content-Length and Transfer-Encoding (RFC 9112 section 6).
		{name: "Content-Length twice, same", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{name: "Content-Length twice, different", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400},
		{name: "Content-Length list", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 5, 5\r\n\r\nhello", status: 400},
		{name: "Content-Length plus sign", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: +5\r\n\r\nhello", status: 400},
		{name: "Content-Length minus sign", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: -5\r\n\r\nhello", status: 400},
		{name: "Content-Length inner space", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 1 5\r\n\r\nhello", status: 400},
		{name: "Content-Length hex", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 0x5\r\n\r\nhello", status: 400},
		{name: "Content-Length overflow", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 99999999999999999999\r\n\r\nhello", status: 400},
		{name: "Content-Length over MaxBodyBytes", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 9223372036854775807\r\n\r\nhello", status: 413},
		{name: "Content-Length outer space", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length:  5 \r\n\r\nhello", status: 200, body: "hello"},
		{name: "TE and CL", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello"},
		{name: "CL and TE", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello"},
		{name: "TE gzip", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", status: 501},
		{name: "TE identity", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", status: 501},
		{name: "TE gzip, chunked", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE chunked, chunked", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE chunked twice", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE chunked in other case", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello"},
		{name: "TE with underscore", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello",
			check: func(t *testing.T, r lenientRequest) {
				if _, ok := r.get("Transfer_Encoding"); ok {
					t.Error("Transfer_Encoding reached the server")
				}
			}},
		{name: "HTTP/1.0 with TE", req: "POST / HTTP/1.0\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{name: "HTTP/1.0 with TE only", req: "POST / HTTP/1.0\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: ""},
		{name: "Expect with TE", req: "POST / HTTP/1.1\r\nHost: lb.test\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello",
			check: func(t *testing.T, r lenientRequest) {
				if _, ok := r.get("Expect"); ok {
					t.Error("Expect reached the server after the proxy answered it")
				}
			}},

		// Request lines (RFC 9112 section 3).
		{name: "invalid method", req: "G(T / HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "space in target", req: "GET /a b HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "two spaces", req: "GET  / HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "control char in target", req: "GET /\x01 HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "no version", req: "GET /\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "bad version", req: "GET / HTTP/1.x\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "HTTP/2 version", req: "GET / HTTP/2.0\r\nHost: lb.test\r\n\r\n", status: 505},
		{name: "target without slash", req: "GET a HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 400},
		{name: "absolute-form", req: "GET http://other.test/x?q HTTP/1.1\r\nHost: lb.test\r\n\r\n", status: 200, body: "",
			check: func(t *testing.T, r lenientRequest) {
				// RFC 9112 section 3.2.2: the target's authority wins.
				if h, _ := r.get("Host"); r.Target != "/x?q" || h != "other.test" {
					t.Errorf("server got target %q, Host %q", r.Target, h)
				}
			}},

		// Limits.
		{name: "101 fields", req: "GET / HTTP/1.1\r\nHost: lb.test\r\n" + many(100) + "\r\n", status: 200, body: ""},
		{name: "102 fields", req: "GET / HTTP/1.1\r\nHost: lb.test\r\n" + many(101) + "\r\n", status: 431},
		{name: "chunked body over MaxBodyBytes", req: chunkedHead + "400\r\n" + strings.Repeat("a", 1024) + "\r\n0\r\n\r\n", status: 413},
		{name: "chunked body at MaxBodyBytes", req: chunkedHead + "200\r\n" + strings.Repeat("a", 512) + "\r\n0\r\n\r\n", status: 200, body: strings.Repeat("a", 512)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startLenient(t)
			_, _, addr := framingProxy(t, srv, func(p *lb.ReverseProxy) { p.MaxBodyBytes = 512 })
			resp, body := rawExchange(t, addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				if got := srv.rawBytes(); got != "" || srv.Accepted() != 0 {
					t.Fatalf("rejected, yet the server accepted %d connections and got %q", srv.Accepted(), got)
				}
				if resp.StatusCode < 500 && !resp.Close {
					t.Errorf("the client connection stays open after a %d", resp.StatusCode)
				}
				return
			}
			if body != "ok" {
				t.Fatalf("body %q, want the server's", body)
			}
			conns := srv.snapshot()
			checkUnambiguous(t, conns, 1)
			if t.Failed() {
				return
			}
			r := conns[0].reqs[0]
			if string(r.Body) != tc.body {
				t.Errorf("the server got body %q, want %q", r.Body, tc.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// TestFramingStreamedBodyError sends a chunked body whose error shows only
// after the proxy forwarded its first part: the server connection must be
// closed, never reused, the client must get 400 or 413 (or a closed
// connection), never a 502, and the failure must count as the client's.
func TestFramingStreamedBodyError(t *testing.T) { forEngines(t, testFramingStreamedBodyError) }

func testFramingStreamedBodyError(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, rest string // sent before and after the server got first
		halfClose   bool   // the client closes its side after rest
		forwarded   bool   // first reaches the server
		status      int    // 0: the client may also see its connection closed
		termination string
	}{
		{name: "invalid chunk", first: "5\r\nhello\r\n", rest: "zz\r\nab\r\n0\r\n\r\n", forwarded: true, status: 400, termination: "PD"},
		{name: "missing CRLF", first: "5\r\nhello\r\n", rest: "2\r\nabX\r\n0\r\n\r\n", forwarded: true, status: 400, termination: "PD"},
		{name: "over MaxBodyBytes", first: "5\r\nhello\r\n", rest: "200\r\n" + strings.Repeat("a", 512) + "\r\n0\r\n\r\n", forwarded: true, status: 413, termination: "PD"},
		{name: "client stops mid-body", first: "5\r\nhello\r\n", rest: "5\r\nab", halfClose: true, forwarded: true, termination: "CD"},
		{name: "client stops before the body", halfClose: true, status: 400, termination: "CR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startLenient(t)
			logs := newCollector()
			proxy, pool, addr := framingProxy(t, srv, func(p *lb.ReverseProxy) {
				p.MaxBodyBytes = 512
				p.AccessLog = logs
			})
			c, err := net.Dial("tcp", addr)
			must(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = io.WriteString(c, chunkedHead+tc.first)
			must(t, err)
			if tc.forwarded {
				testutil.Eventually(t, "the first chunk at the server", func() bool {
					return strings.HasSuffix(srv.rawBytes(), tc.first)
				})
			}
			_, err = io.WriteString(c, tc.rest)
			must(t, err)
			if tc.halfClose {
				must(t, c.(*net.TCPConn).CloseWrite())
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			switch {
			case err == nil:
				resp.Body.Close()
				want := cmp.Or(tc.status, http.StatusBadRequest)
				if resp.StatusCode != want {
					t.Errorf("status %d, want %d", resp.StatusCode, want)
				}
			case tc.status != 0:
				t.Errorf("no response (%v), want %d", err, tc.status)
			}

			r := logs.Next(t)
			if r.Termination != tc.termination || r.Status == http.StatusBadGateway {
				t.Errorf("access record: termination %q, status %d; want %q", r.Termination, r.Status, tc.termination)
			}
			conns := srv.snapshot()
			if !tc.forwarded {
				if len(conns) != 0 {
					t.Fatalf("the server got %q", srv.rawBytes())
				}
			} else {
				testutil.Eventually(t, "the server connection closed", func() bool {
					conns = srv.snapshot()
					return len(conns) == 1 && conns[0].closed
				})
				if len(conns[0].reqs) != 0 {
					t.Errorf("the server found a whole request in %q", conns[0].raw)
				}
				st := pool.Stats().Servers[0]
				if st.ResponseErrors != 0 || st.ClientAborts != 1 || pool.Status()[0].Failures != 0 {
					t.Errorf("server counted %d response errors, %d client aborts, %d failures; want 0, 1, 0",
						st.ResponseErrors, st.ClientAborts, pool.Status()[0].Failures)
				}
			}
			if fs := proxy.Stats(); fs.Responses.Class5xx != 0 {
				t.Errorf("the frontend counted 5xx responses: %+v", fs.Responses)
			}

			// The next request goes on a new server connection.
			resp2, body := rawExchange(t, addr, "GET /next HTTP/1.1\r\nHost: lb.test\r\n\r\n")
			if resp2.StatusCode != 200 || body != "ok" {
				t.Fatalf("next request: %d %q", resp2.StatusCode, body)
			}
			want := int64(1)
			if tc.forwarded {
				want = 2
			}
			if n := srv.Accepted(); n != want {
				t.Errorf("the server accepted %d connections, want %d", n, want)
			}
			conns = srv.snapshot()
			checkUnambiguous(t, conns[len(conns)-1:], 1)
		})
	}
}

// TestFramingExpectContinue: a chunked body is read before a server is
// chosen, so the proxy answers 100 Continue itself and does not forward
// Expect; a Content-Length over MaxBodyBytes gets 413 without 100 Continue.
func TestFramingExpectContinue(t *testing.T) { forEngines(t, testFramingExpectContinue) }

func testFramingExpectContinue(t *testing.T) {
	srv := startLenient(t)
	_, _, addr := framingProxy(t, srv, func(p *lb.ReverseProxy) { p.MaxBodyBytes = 512 })

	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	_, err = io.WriteString(c, "POST /e HTTP/1.1\r\nHost: lb.test\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	must(t, err)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	if resp.StatusCode != http.StatusContinue {
		t.Fatalf("status %d before the body, want 100", resp.StatusCode)
	}
	if got := srv.rawBytes(); got != "" {
		t.Fatalf("the server got %q before the body", got)
	}
	_, err = io.WriteString(c, "5\r\nhello\r\n0\r\n\r\n")
	must(t, err)
	resp, err = http.ReadResponse(br, nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("response %d %q", resp.StatusCode, body)
	}
	conns := srv.snapshot()
	checkUnambiguous(t, conns, 1)
	if t.Failed() {
		return
	}
	r := conns[0].reqs[0]
	if _, ok := r.get("Expect"); ok {
		t.Error("Expect reached the server")
	}
	// The whole body was read: it goes with a Content-Length.
	if cl, _ := r.get("Content-Length"); cl != "5" || r.Chunked || string(r.Body) != "hello" {
		t.Errorf("server got Content-Length %q, chunked %v, body %q", cl, r.Chunked, r.Body)
	}

	resp, _ = rawExchange(t, addr, "POST /big HTTP/1.1\r\nHost: lb.test\r\nExpect: 100-continue\r\nContent-Length: 513\r\n\r\n")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d for a body over MaxBodyBytes, want 413 before 100 Continue", resp.StatusCode)
	}
	if srv.Accepted() != 1 {
		t.Errorf("the server accepted %d connections, want 1", srv.Accepted())
	}
}

// TestFramingHeaderCount checks MaxHeaderCount's settings: Host counts.
func TestFramingHeaderCount(t *testing.T) { forEngines(t, testFramingHeaderCount) }

func testFramingHeaderCount(t *testing.T) {
	fields := func(n int) string {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: lb.test\r\n")
		for i := 1; i < n; i++ {
			b.WriteString("X-Same: v\r\n")
		}
		b.WriteString("\r\n")
		return b.String()
	}
	for _, tc := range []struct {
		max, fields, status int
	}{
		{max: 5, fields: 5, status: 200},
		{max: 5, fields: 6, status: 431},
		{max: 0, fields: 101, status: 200},
		{max: 0, fields: 102, status: 431},
		{max: -1, fields: 500, status: 200},
	} {
		srv := startLenient(t)
		_, _, addr := framingProxy(t, srv, func(p *lb.ReverseProxy) { p.MaxHeaderCount = tc.max })
		resp, _ := rawExchange(t, addr, fields(tc.fields))
		if resp.StatusCode != tc.status {
			t.Errorf("MaxHeaderCount %d, %d fields: status %d, want %d", tc.max, tc.fields, resp.StatusCode, tc.status)
		}
		if tc.status != 200 && srv.Accepted() != 0 {
			t.Errorf("MaxHeaderCount %d, %d fields: rejected, yet forwarded", tc.max, tc.fields)
		}
	}
}

// FuzzFramingParsers checks the two parsers of the framing tests against
// each other: a request the strict parser accepts, the lenient one must
// read to the same end, or the corpus tests could miss a smuggled request.
func FuzzFramingParsers(f *testing.F) {
	f.Add([]byte(chunkedHead + "5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte(chunkedHead + "5;a=\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\n X: b\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, serr := parseStrict(data)
		r, lerr := parseLenient(data)
		if serr != nil {
			return
		}
		if lerr != nil || r.Len != n {
			t.Fatalf("strict: %d bytes; lenient: %d bytes, %v\n%q", n, r.Len, lerr, data)
		}
	})
}

// TestFramingBodyErrorAfterResponse: the server answers before the
// client's body turns out invalid. net/http's server sends no response
// head before the request body is consumed (it reads the rest itself, see
// net/http issue 15527), so the client gets either 400 or the server's
// head followed by a cut connection; never a 502, and the server is not
// blamed.
func TestFramingBodyErrorAfterResponse(t *testing.T) {
	forEngines(t, testFramingBodyErrorAfterResponse)
}

func testFramingBodyErrorAfterResponse(t *testing.T) {
	answered := make(chan struct{}, 1)
	got := make(chan string, 1)
	eager := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for { // the request head
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"); err != nil {
			return
		}
		answered <- struct{}{}
		rest, err := io.ReadAll(br) // the body, until the proxy closes
		got <- fmt.Sprintf("%q, %v", rest, err)
	})
	logs := newCollector()
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "s1", Addr: eager.Addr}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool, AccessLog: logs}, time.Second)

	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, chunkedHead+"5\r\nhello\r\n")
	must(t, err)
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the server")
	}
	_, err = io.WriteString(c, "zz\r\n")
	must(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	must(t, err)
	rest, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusBadRequest:
	case resp.StatusCode == http.StatusOK && err != nil:
		t.Logf("200, then the connection was cut after %q", rest)
	default:
		t.Errorf("status %d, body %q, %v; want 400, or 200 and a cut", resp.StatusCode, rest, err)
	}
	select {
	case s := <-got:
		t.Logf("the server read %s after the head", s)
	case <-time.After(10 * time.Second):
		t.Fatal("the server connection stays open")
	}
	r := logs.Next(t)
	if r.Termination != "PD" && r.Termination != "CD" {
		t.Errorf("termination %q, want PD (400) or CD (cut)", r.Termination)
	}
	st := pool.Stats().Servers[0]
	if st.ServerAborts != 0 || st.ResponseErrors != 0 || st.ClientAborts != 1 || pool.Status()[0].Failures != 0 {
		t.Errorf("server counted %d server aborts, %d response errors, %d client aborts, %d failures; want 0, 0, 1, 0",
			st.ServerAborts, st.ResponseErrors, st.ClientAborts, pool.Status()[0].Failures)
	}
}
