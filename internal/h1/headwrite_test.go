package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestHeadWrittenByRead checks that requests without a body over plain TCP
// take the deferred write (the read that waits for the response writes the
// request), that the server gets them whole, and that the responses come
// back, on one connection; a request with a body is written as before.
func TestHeadWrittenByRead(t *testing.T) {
	testutil.CheckLeaks(t)
	heads := make(chan string, 8)
	srv := testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		heads <- r.Method + " " + r.URL.Path
		if r.Method == "HEAD" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
		} else {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	}))
	tr := newTestTransport(t, 5*time.Second)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	headRequests(t, tr, "http://"+srv.Addr+"/p", heads, false)
	if n := srv.Accepted(); n != 1 {
		t.Fatalf("4 requests used %d connections, want 1", n)
	}
}

// TestHeadWrittenByReadTLS: the same over TLS, where the request's TLS
// records wait in the tlsSocket under the TLS client until its read.
func TestHeadWrittenByReadTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	heads := make(chan string, 8)
	var conns atomic.Int32
	hs := &http.Server{
		TLSConfig: ca.ServerConfig(t, "127.0.0.1"),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			heads <- r.Method + " " + r.URL.Path
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	defer hs.Close()
	tr := newTestTransport(t, 5*time.Second)
	tr.TLSClientConfig = ca.ClientConfig("127.0.0.1")
	headRequests(t, tr, "https://"+ln.Addr().String()+"/p", heads, true)
	if n := conns.Load(); n != 1 {
		t.Fatalf("4 requests used %d connections, want 1", n)
	}
}

// headRequests sends GET, HEAD, POST (with a body) and GET to url through
// tr, checks the responses and the request line each reached the server
// with (from heads), and that the one idle connection left wrote heads
// from its reads, over TLS or not as overTLS says.
func headRequests(t *testing.T, tr *Transport, url string, heads <-chan string, overTLS bool) {
	t.Helper()
	for i, m := range []string{"GET", "HEAD", "POST", "GET"} {
		var body io.Reader
		if m == "POST" {
			body = strings.NewReader("x")
		}
		code, b, err := get(t, tr, m, url, body)
		if err != nil || code != 200 || (m != "HEAD" && b != "ok") {
			t.Fatalf("request %d (%s): %d %q %v", i, m, code, b, err)
		}
		if got := <-heads; got != m+" /p" {
			t.Fatalf("request %d: the server read %q", i, got)
		}
	}
	deferred := 0
	for _, h := range *tr.hosts.Load() {
		h.mu.Lock()
		for _, pc := range h.idle {
			if pc.raw != nil && pc.hr.fn != nil && h.key.tls == overTLS {
				deferred++
			}
		}
		h.mu.Unlock()
	}
	if deferred != 1 {
		t.Fatalf("%d idle connections wrote heads from their reads, want 1", deferred)
	}
}

// TestHeadWriteFullSocket sends a request head that the sockets' small
// buffers do not take at once (the server reads nothing for a while): the
// rest is written with a blocking write, and the response is read as
// usual; over plain TCP and over TLS.
func TestHeadWriteFullSocket(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[overTLS], func(t *testing.T) {
			testHeadWriteFullSocket(t, overTLS)
		})
	}
}

func testHeadWriteFullSocket(t *testing.T, overTLS bool) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if overTLS {
			tc := tls.Server(c, ca.ServerConfig(t, "127.0.0.1"))
			if tc.Handshake() != nil {
				return
			}
			c = tc
		}
		time.Sleep(200 * time.Millisecond) // the client's write fills the buffers
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		big := req.Header.Get("X-Big")
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n"+big)
	}()
	defer func() { <-done }()
	tr := newTestTransport(t, 5*time.Second)
	tr.TLSClientConfig = ca.ClientConfig("127.0.0.1")
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetWriteBuffer(1024) // the kernel's minimum, about 4.6 KB
		}
		return c, err
	}
	scheme := map[bool]string{false: "http", true: "https"}[overTLS]
	big := strings.Repeat("b", 12<<10) // under BufferSize: one deferred head
	req, _ := http.NewRequest("GET", scheme+"://"+ln.Addr().String()+"/", nil)
	req.Header.Set("X-Big", big)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != big {
		t.Fatalf("response of %d bytes, %v; want the %d bytes of X-Big", len(b), err, len(big))
	}
}
