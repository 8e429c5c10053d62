package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
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
		heads <- r.Method + " " + r.URL.Path + " " + r.Header.Get("X-Big")[:min(4, len(r.Header.Get("X-Big")))]
		if r.Method == "HEAD" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
		} else {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	}))
	var deferred int
	tr := newTestTransport(t, 5*time.Second)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	for i, m := range []string{"GET", "HEAD", "POST", "GET"} {
		var body io.Reader
		if m == "POST" {
			body = strings.NewReader("x")
		}
		code, b, err := get(t, tr, m, "http://"+srv.Addr+"/p", body)
		if err != nil || code != 200 || (m != "HEAD" && b != "ok") {
			t.Fatalf("request %d (%s): %d %q %v", i, m, code, b, err)
		}
		if got := <-heads; !strings.HasPrefix(got, m+" /p") {
			t.Fatalf("request %d: the server read %q", i, got)
		}
	}
	if n := srv.Accepted(); n != 1 {
		t.Fatalf("4 requests used %d connections, want 1", n)
	}
	for _, h := range *tr.hosts.Load() {
		h.mu.Lock()
		for _, pc := range h.idle {
			if pc.raw != nil {
				deferred++
			}
		}
		h.mu.Unlock()
	}
	if deferred != 1 {
		t.Fatalf("%d idle connections write heads from their reads, want 1 (a plain *net.TCPConn)", deferred)
	}
}

// TestHeadWriteFullSocket sends a request head that the sockets' small
// buffers do not take at once (the server reads nothing for a while): the
// rest is written with a blocking write, and the response is read as
// usual.
func TestHeadWriteFullSocket(t *testing.T) {
	testutil.CheckLeaks(t)
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
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetWriteBuffer(1024) // the kernel's minimum, about 4.6 KB
		}
		return c, err
	}
	big := strings.Repeat("b", 12<<10) // under BufferSize: one deferred head
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
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
