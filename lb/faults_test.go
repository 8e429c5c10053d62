package lb_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// Fault tests: servers that die mid-response, never answer or reset every
// connection, seen from a client of each data path.

// faultHalf is the part of a response body a dying server sends: more than
// the proxy buffers, so that the client gets the headers and part of the
// body before the cut.
const faultHalf = 64 << 10

// cutResponse writes the headers of a response of 2*faultHalf bytes (with a
// Content-Length, or chunked), half of its body, and then breaks the
// connection c: closes it (a FIN) or resets it (SO_LINGER 0).
func cutResponse(c net.Conn, chunked, reset bool) {
	half := bytes.Repeat([]byte("x"), faultHalf)
	if chunked {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(half), half)
	} else {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 2*len(half), half)
	}
	if reset {
		c.(*net.TCPConn).SetLinger(0)
	}
	c.Close()
}

// rawGet sends a GET for path on a new connection to addr and reads what
// comes back until the connection ends, returning the bytes and the error
// that ended the read (nil for a clean EOF).
func rawGet(t *testing.T, addr, path string) ([]byte, error) {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: faults\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the proxy kept the connection open after %d bytes", len(b))
	}
	return b, err
}

// TestFaultL7ServerDiesMidResponse: when a server breaks off a response, the
// client sees a cut connection, never a shorter body presented as complete:
// the proxy keeps the server's Content-Length, sends no last chunk, and
// closes the connection; the abort is counted against the server.
func TestFaultL7ServerDiesMidResponse(t *testing.T) {
	for _, tc := range []struct {
		name           string
		chunked, reset bool
	}{
		{"length-close", false, false},
		{"length-reset", false, true},
		{"chunked-close", true, false},
		{"chunked-reset", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				cutResponse(c, tc.chunked, tc.reset)
			})
			pool := &lb.Pool{Name: "web"}
			must(t, pool.Update([]lb.Server{{Name: "dying", Addr: srv.Addr}}))
			logs := newCollector()
			proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs}
			url, _ := startL7(t, proxy, time.Second)
			addr := strings.TrimPrefix(url, "http://")

			// A raw client: the exact bytes.
			b, _ := rawGet(t, addr, "/")
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
			if err != nil {
				t.Fatalf("no response head in %d bytes: %v", len(b), err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want the server's 200", resp.StatusCode)
			}
			if tc.chunked {
				if resp.ContentLength != -1 {
					t.Fatalf("Content-Length %d for a chunked response", resp.ContentLength)
				}
				if bytes.HasSuffix(b, []byte("\r\n0\r\n\r\n")) {
					t.Fatal("the proxy sent the last chunk of a cut response")
				}
			} else if resp.ContentLength != 2*faultHalf {
				t.Fatalf("Content-Length %d, want the server's %d", resp.ContentLength, 2*faultHalf)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("body of %d bytes ended with %v, want io.ErrUnexpectedEOF", len(body), err)
			}
			if len(body) > faultHalf {
				t.Fatalf("%d body bytes, the server sent %d", len(body), faultHalf)
			}
			if r := logs.Next(t); r.Termination != "SD" || r.Server != "dying" {
				t.Fatalf("record %+v, want termination SD on dying", r)
			}

			// A net/http client: an error, not a short body.
			c := client()
			defer c.CloseIdleConnections()
			resp, err = c.Get(url)
			must(t, err)
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("net/http client read a complete body of %d bytes", len(body))
			}
			if r := logs.Next(t); r.Termination != "SD" {
				t.Fatalf("record %+v, want termination SD", r)
			}
			st := pool.Stats().Servers[0]
			if st.ServerAborts != 2 || st.ClientAborts != 0 {
				t.Fatalf("server aborts %d, client aborts %d; want 2, 0", st.ServerAborts, st.ClientAborts)
			}
			testutil.Eventually(t, "the leases to end", func() bool { return pool.Status()[0].Active == 0 })
		})
	}
}

// TestFaultL4ServerDiesMidStream: at L4 a server that closes its connection
// half-closes the client's (the client reads everything, then EOF, and may
// still send); one that resets it resets the client's, so a cut stream does
// not look complete.
func TestFaultL4ServerDiesMidStream(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			testutil.CheckLeaks(t)
			got := make(chan string, 1)
			srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
				if reset {
					// A reset that follows the accept at once can reach
					// the proxy before its connect has checked the socket
					// (SO_ERROR), which then fails the connect: a server
					// that never took the session, not this test's case.
					time.Sleep(50 * time.Millisecond)
				}
				io.WriteString(c, "partial")
				if reset {
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					return
				}
				c.(*net.TCPConn).CloseWrite()
				line, _ := br.ReadString('\n')
				got <- line
			})
			pool := &lb.Pool{Name: "tcp"}
			must(t, pool.Update([]lb.Server{{Name: "dying", Addr: srv.Addr}}))
			logs := newCollector()
			addr := serveL4(t, &lb.TCPFrontend{Name: "fe", Backend: pool, AccessLog: logs})
			if reset {
				// The whole session may end before the client's connect
				// returns: then the connect itself sees the reset.
				b, err := readAll(t, addr, "")
				if !strings.HasPrefix("partial", string(b)) || !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("read %q, %v; want a prefix of what the server sent and a reset", b, err)
				}
				if r := logs.Next(t); r.Termination != "SD" || r.Server != "dying" {
					t.Fatalf("record %+v, want termination SD", r)
				}
				if st := pool.Stats().Servers[0]; !spliced() && (st.ServerAborts != 1 || st.ClientAborts != 0) {
					t.Fatalf("server aborts %d, client aborts %d; want 1, 0", st.ServerAborts, st.ClientAborts)
				}
				return
			}
			c := dial(t, addr)
			defer c.Close()
			b, err := io.ReadAll(c)
			if string(b) != "partial" && !(reset && strings.HasPrefix("partial", string(b))) {
				t.Fatalf("read %q, want what the server sent", b)
			}
			if err != nil {
				t.Fatalf("read: %v, want a clean EOF", err)
			}
			// Half-closed: the client's direction still works.
			if _, err := io.WriteString(c, "after eof\n"); err != nil {
				t.Fatal(err)
			}
			if line := <-got; line != "after eof\n" {
				t.Fatalf("server read %q after its half-close", line)
			}
			c.(*net.TCPConn).CloseWrite()
			if r := logs.Next(t); r.Termination != "--" {
				t.Fatalf("record %+v, want a clean end", r)
			}
		})
	}
}

// readAll connects to addr, sends msg and reads until the connection ends,
// returning what it read and the error that ended it (nil for EOF), which
// may be the connect's own when the connection was reset before the connect
// returned. A read that times out fails the test.
func readAll(t *testing.T, addr, msg string) ([]byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if msg != "" {
		io.WriteString(c, msg)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection stayed open after %d bytes", len(b))
	}
	return b, err
}

// TestFaultL4ClientResets: a client that resets its connection mid-session
// is the client's abort, not the server's.
func TestFaultL4ClientResets(t *testing.T) {
	if spliced() {
		t.Skip("the splice path cannot tell whose connection failed")
	}
	testutil.CheckLeaks(t)
	srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) { io.Copy(c, br) })
	pool := &lb.Pool{Name: "tcp"}
	must(t, pool.Update([]lb.Server{{Name: "echo", Addr: srv.Addr}}))
	logs := newCollector()
	addr := serveL4(t, &lb.TCPFrontend{Name: "fe", Backend: pool, AccessLog: logs})
	c := dial(t, addr)
	roundTrip(t, c, "hello")
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if r := logs.Next(t); r.Termination != "CD" {
		t.Fatalf("record %+v, want termination CD", r)
	}
	if st := pool.Stats().Servers[0]; st.ClientAborts != 1 || st.ServerAborts != 0 {
		t.Fatalf("client aborts %d, server aborts %d; want 1, 0", st.ClientAborts, st.ServerAborts)
	}
	testutil.Eventually(t, "the server connection to close", func() bool { return srv.Open() == 0 })
}

// spliced reports whether L4 sessions are copied by goroutines with
// splice(2) (LBKIT_PIPE=goroutines), whose errors do not say whether the
// read or the write failed, so that a session's failure is the server's
// for the counters and the access log.
func spliced() bool { return os.Getenv("LBKIT_PIPE") == "goroutines" }

// silentServer accepts connections, reads what comes and never answers.
func silentServer(t *testing.T) *testutil.RawServer {
	return testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
}

// TestFaultL7ServerNeverAnswers: a server that never answers gets the
// client a 504 after ServerTimeout, and leaves nothing behind.
func TestFaultL7ServerNeverAnswers(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := silentServer(t)
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Name: "silent", Addr: srv.Addr}}))
	const timeout = 200 * time.Millisecond
	logs := newCollector()
	proxy := &lb.ReverseProxy{Pool: pool, ServerTimeout: timeout, AccessLog: logs}
	url, _ := startL7(t, proxy, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	start := time.Now()
	code, _, _ := get(t, c, url)
	if code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", code)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("504 after %v, before ServerTimeout %v", d, timeout)
	}
	if r := logs.Next(t); r.Termination != "sH" {
		t.Fatalf("record %+v, want sH", r)
	}
	testutil.Eventually(t, "the server connection to close", func() bool { return srv.Open() == 0 })
	if a := pool.Status()[0].Active; a != 0 {
		t.Fatalf("%d requests still active", a)
	}
}

// TestFaultL4ServerNeverAnswers: at L4 a silent server and a silent client
// are closed after the tunnel timeout.
func TestFaultL4ServerNeverAnswers(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := silentServer(t)
	pool := &lb.Pool{TunnelTimeout: 200 * time.Millisecond}
	must(t, pool.Update([]lb.Server{{Name: "silent", Addr: srv.Addr}}))
	logs := newCollector()
	fe := &lb.TCPFrontend{Name: "fe", Backend: pool, AccessLog: logs}
	addr := serveL4(t, fe)
	c := dial(t, addr)
	defer c.Close()
	io.WriteString(c, "hello?")
	start := time.Now()
	b, err := io.ReadAll(c)
	var ne net.Error
	if len(b) != 0 || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read %q, %v; want the connection closed", b, err)
	}
	if d := time.Since(start); d < pool.TunnelTimeout {
		t.Fatalf("closed after %v, before the tunnel timeout", d)
	}
	if r := logs.Next(t); r.Termination != "cD" {
		t.Fatalf("record %+v, want cD", r)
	}
	testutil.Eventually(t, "the server connection to close", func() bool { return srv.Open() == 0 })
	testutil.Eventually(t, "the frontend to be idle", func() bool { return fe.ActiveConns() == 0 })
}

// resetOnAccept is a listener on 127.0.0.1 that resets every connection as
// soon as it accepts it.
func resetOnAccept(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// resetAfterRequest is a server that reads a request and resets the
// connection instead of answering.
func resetAfterRequest(t *testing.T) *testutil.RawServer {
	return testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		if r, err := http.ReadRequest(br); err == nil {
			io.Copy(io.Discard, r.Body)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

// TestFaultL7ServerResets: a server alone that resets every connection gets
// the client a 502; next to a working one, requests that are safe to send
// again (no body, idempotent) are retried on it, others get a 502 when the
// request reached the resetting server.
func TestFaultL7ServerResets(t *testing.T) {
	for _, kind := range []string{"on-accept", "after-request"} {
		t.Run(kind, func(t *testing.T) {
			testutil.CheckLeaks(t)
			bad := ""
			if kind == "on-accept" {
				bad = resetOnAccept(t)
			} else {
				bad = resetAfterRequest(t).Addr
			}
			good := testutil.HTTPBackend(t, "good")
			pool := &lb.Pool{}
			must(t, pool.Update([]lb.Server{{Name: "bad", Addr: bad}}))
			proxy := &lb.ReverseProxy{Pool: pool}
			url, _ := startL7(t, proxy, time.Second)
			c := client()
			defer c.CloseIdleConnections()
			if code, _, _ := get(t, c, url); code != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", code)
			}

			must(t, pool.Update([]lb.Server{{Name: "bad", Addr: bad}, {Name: "good", Addr: good.Addr}}))
			for i := range 6 {
				if code, body, _ := get(t, c, url); code != http.StatusOK || !strings.Contains(body, "good") {
					t.Fatalf("GET %d: %d %q, want the good server's answer", i, code, body)
				}
			}
			st := pool.Stats()
			if st.Servers[0].Requests == 0 || st.Redispatches == 0 {
				t.Fatalf("bad server requests %d, redispatches %d: the resetting server was not tried",
					st.Servers[0].Requests, st.Redispatches)
			}
			// A POST is not sent twice: it fails where it went to the bad server.
			var codes []int
			for range 4 {
				resp, err := c.Post(url, "text/plain", strings.NewReader("once"))
				must(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes = append(codes, resp.StatusCode)
			}
			if !containsCode(codes, http.StatusOK) || (kind == "after-request" && !containsCode(codes, http.StatusBadGateway)) {
				t.Fatalf("POST statuses %v", codes)
			}
		})
	}
}

func containsCode(codes []int, code int) bool {
	for _, c := range codes {
		if c == code {
			return true
		}
	}
	return false
}

// TestFaultL4ServerResets: at L4 the client of a server that resets on
// accept is closed, and a health check marks that server down.
func TestFaultL4ServerResets(t *testing.T) {
	testutil.CheckLeaks(t)
	bad := resetOnAccept(t)
	pool := &lb.Pool{Retries: -1}
	must(t, pool.Update([]lb.Server{{Name: "bad", Addr: bad}}))
	addr := serveL4(t, &lb.TCPFrontend{Name: "fe", Backend: pool})
	for range 3 {
		if b, err := readAll(t, addr, "hello"); len(b) != 0 {
			t.Fatalf("read %q, %v; want the connection closed", b, err)
		}
	}
}
