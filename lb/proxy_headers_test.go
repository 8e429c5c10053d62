package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// recordingServer is a raw HTTP/1.1 server that sends the exact head of
// each request it reads (bodies are not expected) on the returned channel
// and answers 200 "ok", or 101 Switching Protocols to a request that asks
// for an upgrade, as a server speaking h2c would.
func recordingServer(t *testing.T) (*testutil.RawServer, <-chan string) {
	heads := make(chan string, 16)
	srv := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil {
					return
				}
				if line == "\r\n" {
					break
				}
			}
			heads <- head.String()
			if strings.Contains(strings.ToLower(head.String()), "\r\nupgrade:") {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
				io.Copy(io.Discard, br) // the connection now belongs to the other protocol
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return srv, heads
}

// rawRoundTrip writes req on c and reads one response.
func rawRoundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp
}

// headerNames returns the names of the header fields of a raw request head.
func headerNames(head string) map[string]bool {
	names := make(map[string]bool)
	lines := strings.Split(head, "\r\n")
	for _, l := range lines[1:] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			names[name] = true
		}
	}
	return names
}

// TestUnderscoreHeaders sends header names with underscores through a
// ReverseProxy on a raw connection and checks the names the server gets:
// the aliases of framing, hop-by-hop and forwarding fields are dropped by
// default, other names pass unless DropUnderscoreHeaders is set.
func TestUnderscoreHeaders(t *testing.T) {
	testutil.CheckLeaks(t)
	dangerous := []string{
		"Transfer_Encoding", "content_length", "CONTENT_LENGTH", "Keep_Alive", "Proxy_Connection",
		"Proxy_Authorization", "Proxy_Authenticate", "X_Forwarded_For", "x_forwarded_host",
		"X_Forwarded_Proto", "X_Forwarded_Port", "X-Forwarded_For", "X_Real_IP", "x_real_ip",
	}
	benign := []string{"X_Custom", "grpc_meta", "Content_Length_X", "X_Forwarded"}

	for _, strict := range []bool{false, true} {
		name := "default"
		if strict {
			name = "strict"
		}
		t.Run(name, func(t *testing.T) {
			srv, heads := recordingServer(t)
			pool := &Pool{}
			if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
				t.Fatal(err)
			}
			proxy := &ReverseProxy{Pool: pool, DropUnderscoreHeaders: strict}
			url := startProxy(t, proxy)
			t.Cleanup(func() { closeIdle(proxy) })

			c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var req strings.Builder
			req.WriteString("GET /h HTTP/1.1\r\nHost: example.com\r\n")
			for _, n := range dangerous {
				req.WriteString(n + ": 5\r\n")
			}
			for _, n := range benign {
				req.WriteString(n + ": v\r\n")
			}
			req.WriteString("\r\n")
			resp := rawRoundTrip(t, c, bufio.NewReader(c), req.String())
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			var head string
			select {
			case head = <-heads:
			case <-time.After(5 * time.Second):
				t.Fatal("the server got no request")
			}
			got := headerNames(head)
			for n := range got {
				if strict && strings.Contains(n, "_") {
					t.Errorf("strict mode forwarded %q", n)
				}
			}
			for _, n := range dangerous {
				if got[http.CanonicalHeaderKey(n)] || got[n] {
					t.Errorf("%q forwarded:\n%s", n, head)
				}
			}
			for _, n := range benign {
				forwarded := got[http.CanonicalHeaderKey(n)]
				if forwarded == strict {
					t.Errorf("%q forwarded %v in %s mode:\n%s", n, forwarded, name, head)
				}
			}
			if !got["X-Forwarded-For"] || !got["Host"] {
				t.Errorf("X-Forwarded-For or Host missing:\n%s", head)
			}
		})
	}
}

// TestH2CUpgradeNotTunneled checks the h2c smuggling pattern: a request
// asking to upgrade to cleartext HTTP/2 through a ReverseProxy must not
// become a tunnel to the server, which would carry further requests past
// the proxy's per-request routing and access rules.
func TestH2CUpgradeNotTunneled(t *testing.T) {
	testutil.CheckLeaks(t)
	srv, heads := recordingServer(t)
	pool := &Pool{}
	if err := pool.Update([]Server{{Addr: srv.Addr}}); err != nil {
		t.Fatal(err)
	}
	proxy := &ReverseProxy{Pool: pool}
	acl := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/private") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	front := httptest.NewServer(acl)
	t.Cleanup(func() {
		front.Close()
		proxy.Close()
	})
	t.Cleanup(func() { closeIdle(proxy) })

	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	resp := rawRoundTrip(t, c, br, "GET /public HTTP/1.1\r\nHost: example.com\r\n"+
		"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("the upgrade to h2c was tunnelled: %s", resp.Status)
	}
	select {
	case head := <-heads:
		lower := strings.ToLower(head)
		if strings.Contains(lower, "\r\nupgrade:") || strings.Contains(lower, "http2-settings") {
			t.Errorf("the server was asked to upgrade:\n%s", head)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server got no request")
	}

	// The next request on the same connection is still HTTP/1.1, seen and
	// refused by the proxy's rules.
	resp = rawRoundTrip(t, c, br, "GET /private HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("follow-up request: status %d, want 403", resp.StatusCode)
	}
	select {
	case head := <-heads:
		t.Errorf("the server got the follow-up request:\n%s", head)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestDropUnderscoreHeadersUnit covers the names the proxy cannot carry
// over a real connection (a name that Go's server keeps apart from its
// canonical form) and the allocation-free path.
func TestDropUnderscoreHeadersUnit(t *testing.T) {
	h := http.Header{
		"Connection_":        {"x"}, // not an alias: one byte longer
		"Te_":                {"x"},
		"Te":                 {"trailers"},
		"Transfer_encoding":  {"chunked"},
		"Upgrade_":           {"x"},
		"Host_":              {"x"},
		"Trailer_x":          {"x"},
		"Forwarded_":         {"x"},
		"Connection_keep":    {"x"},
		"Proxy_connection":   {"x"},
		"x_forwarded_PROTO":  {"x"},
		"Grpc_meta":          {"x"},
		"Content-Length":     {"1"},
		"Transfer-Encoding_": {"x"},
	}
	dropUnderscoreHeaders(h, false)
	for _, n := range []string{"Transfer_encoding", "Proxy_connection", "x_forwarded_PROTO"} {
		if _, ok := h[n]; ok {
			t.Errorf("%q kept", n)
		}
	}
	for _, n := range []string{"Connection_", "Te_", "Te", "Upgrade_", "Host_", "Trailer_x", "Forwarded_", "Connection_keep", "Grpc_meta", "Content-Length", "Transfer-Encoding_"} {
		if _, ok := h[n]; !ok {
			t.Errorf("%q dropped", n)
		}
	}
	for _, a := range underscoreAliases {
		if !aliasesProtected(strings.ReplaceAll(strings.ToUpper(a), "-", "_")) {
			t.Errorf("no alias of %q", a)
		}
	}
	dropUnderscoreHeaders(h, true)
	for n := range h {
		if strings.Contains(n, "_") {
			t.Errorf("strict mode kept %q", n)
		}
	}

	plain := http.Header{"Accept": {"*/*"}, "User-Agent": {"x"}, "X-Custom": {"v"}, "Grpc-Meta": {"v"}}
	if n := testing.AllocsPerRun(100, func() {
		dropUnderscoreHeaders(plain, false)
		dropUnderscoreHeaders(plain, true)
		dropH2CUpgrade(plain)
	}); n != 0 {
		t.Errorf("%v allocations per request without underscores, want 0", n)
	}
	if len(plain) != 4 {
		t.Errorf("plain header changed: %v", plain)
	}
}

// TestDropH2CUpgrade covers the forms of an Upgrade field that offers h2c.
func TestDropH2CUpgrade(t *testing.T) {
	for _, up := range []string{"h2c", "H2C", "websocket, h2c", "foo,  h2c/1 ,bar"} {
		h := http.Header{"Upgrade": {up}, "Connection": {"Upgrade"}}
		dropH2CUpgrade(h)
		if len(h) != 0 {
			t.Errorf("Upgrade: %s: left %v", up, h)
		}
	}
	h := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	dropH2CUpgrade(h)
	if len(h) != 2 {
		t.Errorf("Upgrade: websocket: left %v", h)
	}
}
