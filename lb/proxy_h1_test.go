package lb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/h1"
	"github.com/lbkit/lbkit/internal/testutil"
)

// scripted is a server answering each path with a canned raw response.
func scripted(t *testing.T) *testutil.RawServer {
	return testutil.StartRaw(t, testutil.RawHTTP(func(w io.Writer, r *http.Request, n int) bool {
		switch r.URL.Path {
		case "/length":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlength")
		case "/chunked":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nchu\r\n4\r\nnked\r\n0\r\nX-T: done\r\n\r\n")
		case "/close":
			io.WriteString(w, "HTTP/1.0 200 OK\r\n\r\nclose-delimited")
			return false
		case "/head":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		case "/204":
			io.WriteString(w, "HTTP/1.1 204 No Content\r\n\r\n")
		case "/304":
			io.WriteString(w, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
		case "/103":
			io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 102 Processing\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		case "/garbage":
			io.WriteString(w, "this is not HTTP\r\n\r\n")
			return false
		case "/extra":
			// A broken server: more bytes than the response.
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextraGARBAGE")
		case "/huge-header":
			io.WriteString(w, "HTTP/1.1 200 OK\r\n")
			for range h1.MaxHeaderBytes/1000 + 1 {
				io.WriteString(w, "X-Big: "+strings.Repeat("b", 1000)+"\r\n")
			}
			io.WriteString(w, "Content-Length: 0\r\n\r\n")
			return false
		case "/101":
			io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
			return false
		case "/slow":
			time.Sleep(2 * time.Second)
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
		case "/slower":
			w.(net.Conn).Read(make([]byte, 1)) // no answer until the client closes
			return false
		case "/stall-body":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			w.(net.Conn).Read(make([]byte, 1)) // until the client closes
			return false
		default:
			io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
		return true
	}))
}

// closeIdle closes the idle server connections of proxy's transports.
func closeIdle(proxy *ReverseProxy) {
	proxy.proxies.Range(func(_, v any) bool {
		if ci, ok := v.(*httputil.ReverseProxy).Transport.(*poolTransport).base.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
		return true
	})
}

// startProxy serves proxy on a loopback http.Server, closed on cleanup.
func startProxy(t *testing.T, proxy *ReverseProxy) string {
	t.Helper()
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		proxy.Close()
	})
	return srv.URL
}

// TestH1ResponseForms sends requests through a ReverseProxy to a server
// answering in the various forms HTTP/1.x allows, then checks that the
// connection is reused or closed as it should be.
func TestH1ResponseForms(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool, ServerTimeout: 300 * time.Millisecond}
	url := startProxy(t, proxy)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	t.Cleanup(func() { closeIdle(proxy) })

	tests := []struct {
		method   string
		path     string
		code     int
		body     string
		trailer  string
		newConns int64 // server connections opened by this request and the follow-up one
	}{
		{"GET", "/length", 200, "length", "", 0},
		{"GET", "/chunked", 200, "chunked", "done", 0},
		{"GET", "/close", 200, "close-delimited", "", 1},
		{"HEAD", "/head", 200, "", "", 0},
		{"GET", "/204", 204, "", "", 0},
		{"GET", "/304", 304, "", "", 0},
		{"GET", "/103", 200, "final", "", 0},
		{"GET", "/garbage", 502, "", "", 1},
		{"GET", "/extra", 200, "extra", "", 1},
		{"GET", "/huge-header", 502, "", "", 1},
		{"GET", "/101", 502, "", "", 1},
		{"GET", "/slow", 504, "", "", 1},
	}
	// Warm up: one idle connection.
	if code, _, err := get1(t, c, url+"/length"); code != 200 || err != nil {
		t.Fatal(code, err)
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			before := srv.Accepted()
			req, _ := http.NewRequest(tt.method, url+tt.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.code < 500 && string(b) != tt.body {
				t.Fatalf("body %q, want %q", b, tt.body)
			}
			if got := resp.Trailer.Get("X-T"); got != tt.trailer {
				t.Fatalf("trailer %q, want %q", got, tt.trailer)
			}
			// The next request reuses the connection unless it had to close.
			if code, body, _ := get1(t, c, url+"/length"); code != 200 || body != "length" {
				t.Fatalf("follow-up request: %d %q", code, body)
			}
			if got := srv.Accepted() - before; got != tt.newConns {
				t.Fatalf("%d new server connections, want %d", got, tt.newConns)
			}
			if a := pool.Status()[0].Active; a != 0 {
				t.Fatalf("%d requests still active", a)
			}
		})
	}
}

func get1(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestH1ClientCancel checks that a client going away aborts the wait for a
// slow response, and the read of a stalled body, and ends the lease.
func TestH1ClientCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool}
	url := startProxy(t, proxy)
	t.Cleanup(srv.Close) // before the proxy's: ends reads that were not interrupted
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	for _, tt := range []struct {
		path      string
		blockedIn string // where the engine's read blocks
	}{
		{"/slower", "h1.(*Transport).exchange"},
		{"/stall-body", "h1.(*body).Read"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", url+tt.path, nil)
			done := make(chan error, 1)
			go func() {
				resp, err := tr.RoundTrip(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			testutil.WaitBlocked(t, tt.blockedIn)
			start := time.Now()
			cancel()
			if err := <-done; err == nil {
				t.Fatal("canceled request succeeded")
			}
			// The server never ends these responses by itself (within the
			// 5 s of Eventually): the lease ends because the engine's
			// blocked read was interrupted.
			testutil.Eventually(t, "lease ended", func() bool { return pool.Status()[0].Active == 0 })
			if d := time.Since(start); d > time.Second {
				t.Fatalf("the lease ended %v after the cancel", d)
			}
		})
	}
}

// TestH1Bodies sends large and small bodies both ways through a
// ReverseProxy: the engine's and the fallback's.
func TestH1Bodies(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.HTTPBackend(t, "b")
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: backend.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool}
	url := startProxy(t, proxy)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	t.Cleanup(func() { closeIdle(proxy) })

	// 8 MiB down.
	resp, err := c.Get(url + "/size?n=" + strconv.Itoa(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 8<<20 {
		t.Fatalf("8 MiB response: %d bytes, %v", n, err)
	}

	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	tests := []struct {
		name    string
		size    int
		chunked bool
	}{
		{"1 KiB", 1 << 10, false},
		{"64 KiB", h1.MaxBody, false},
		{"1 MiB (fallback)", 1 << 20, false},
		{"chunked upload (fallback)", 200 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := pattern(tt.size)
			var body io.Reader = bytes.NewReader(want)
			if tt.chunked {
				body = io.MultiReader(body) // unknown length
			}
			resp, err := c.Post(url+"/echo", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("echo of %d bytes: status %d, %d bytes back, %v", tt.size, resp.StatusCode, len(got), err)
			}
			if r, ok := backend.LastRequest(); !ok || r.Method != "POST" {
				t.Fatalf("backend saw %+v", r)
			}
		})
	}
}

// TestH1ConnectErrorKept checks that the Pool's dial error reaches
// poolTransport as is, so that it retries on another server.
func TestH1ConnectErrorKept(t *testing.T) {
	p := &ReverseProxy{}
	want := &ConnectError{Server: "x", Err: errors.New("refused")}
	rt := p.newTransport(nil, func(context.Context, string, string) (net.Conn, error) { return nil, want })
	_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://127.0.0.1:1/", nil).WithContext(context.Background()))
	var ce *ConnectError
	if !errors.As(err, &ce) || ce != want {
		t.Fatalf("error %v, want the ConnectError", err)
	}
}

// TestH1ForwardsEarlyHints checks that 1xx responses reach the client
// through httputil.ReverseProxy, as with net/http's Transport.
func TestH1ForwardsEarlyHints(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := scripted(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
		t.Fatal(err)
	}
	url := startProxy(t, &ReverseProxy{Pool: pool})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/103", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final" {
		t.Fatalf("final response %d %q", resp.StatusCode, b)
	}
	if len(got) == 0 || got[0] != "103 </s.css>; rel=preload" {
		t.Fatalf("1xx responses seen by the client: %q", got)
	}
}
