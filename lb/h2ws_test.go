package lb_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// xconnectEnv marks the test process that TestH2WebSocket starts with
// GODEBUG=http2xconnect=1, which net/http and x/net/http2 read at start.
const xconnectEnv = "LBKIT_TEST_H2_XCONNECT"

// TestH2WebSocket runs TestH2WebSocketXConnect in a process of its own
// with extended CONNECT enabled.
func TestH2WebSocket(t *testing.T) {
	if os.Getenv(xconnectEnv) != "" {
		t.Skip("the child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestH2WebSocketXConnect$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), xconnectEnv+"=1", "GODEBUG=http2xconnect=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestH2WebSocketXConnect") {
		t.Fatalf("TestH2WebSocketXConnect with GODEBUG=http2xconnect=1: %v\n%s", err, out)
	}
}

// TestH2WebSocketXConnect checks a WebSocket over HTTP/2 (RFC 8441) through
// an h2c frontend to a server's HTTP/1.1 upgrade: the server offers
// SETTINGS_ENABLE_CONNECT_PROTOCOL, the CONNECT gets a 200, and bytes go
// both ways.
func TestH2WebSocketXConnect(t *testing.T) {
	if os.Getenv(xconnectEnv) == "" {
		t.Skip("run by TestH2WebSocket, with GODEBUG=http2xconnect=1")
	}
	backend := testutil.HTTPBackend(t, "ws")
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Addr: backend.Addr}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	addr := startH2(t, proxy, lb.HTTP2Options{Cleartext: true}, nil)

	h := openXConnect(t, addr)
	f := h.until("the response", func(f http2.Frame) bool { return f.Header().StreamID == 1 })
	mh, ok := f.(*http2.MetaHeadersFrame)
	if !ok || mh.PseudoValue("status") != "200" {
		t.Fatalf("extended CONNECT: %v, want :status 200", f)
	}
	if req, _ := backend.LastRequest(); req.Method != "GET" || req.URI != "/ws" || req.Header.Get("Upgrade") != "websocket" ||
		req.Header.Get("Sec-Websocket-Key") == "" || req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("the server got %+v, want an HTTP/1.1 WebSocket upgrade of /ws", req)
	}
	msg := []byte("\x81\x05hello") // a WebSocket text frame; the server echoes bytes
	must(t, h.fr.WriteData(1, false, msg))
	var got []byte
	for len(got) < len(msg) {
		f := h.until("the echo", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok && f.Header().StreamID == 1 })
		got = append(got, f.(*http2.DataFrame).Data()...)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo %q, want %q", got, msg)
	}
	if n := proxy.ActiveStreams(); n != 1 {
		t.Errorf("ActiveStreams %d during the WebSocket, want 1", n)
	}
	must(t, h.fr.WriteData(1, true, nil)) // the client ends its side
	h.until("the end of the stream", func(f http2.Frame) bool {
		if f.Header().StreamID != 1 {
			return false
		}
		_, rst := f.(*http2.RSTStreamFrame)
		return rst || f.Header().Flags.Has(http2.FlagDataEndStream)
	})
	testutil.Eventually(t, "the WebSocket stream to end", func() bool { return proxy.ActiveStreams() == 0 })

	// A server that refuses the upgrade: its status reaches the client,
	// without the fields of its HTTP/1.1 connection, which would make the
	// HTTP/2 response malformed.
	refuser := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusUpgradeRequired)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go refuser.Serve(ln)
	t.Cleanup(func() { refuser.Close() })
	refusing := &lb.Pool{}
	must(t, refusing.Update([]lb.Server{{Addr: ln.Addr().String()}}))
	h = openXConnect(t, startH2(t, &lb.ReverseProxy{Pool: refusing}, lb.HTTP2Options{Cleartext: true}, nil))
	f = h.until("the refusal", func(f http2.Frame) bool { return f.Header().StreamID == 1 })
	mh, ok = f.(*http2.MetaHeadersFrame)
	if !ok || mh.PseudoValue("status") != "426" {
		t.Fatalf("refused extended CONNECT: %v, want :status 426", f)
	}
	for _, hf := range mh.RegularFields() {
		if hf.Name == "upgrade" || hf.Name == "connection" {
			t.Errorf("the HTTP/2 response carries %q", hf.Name)
		}
	}
}

// openXConnect opens an HTTP/2 connection to addr, checks that the server
// offers extended CONNECT, and sends a WebSocket CONNECT of /ws on stream 1.
func openXConnect(t *testing.T, addr string) *h2Raw {
	t.Helper()
	h := dialH2Raw(t, addr)
	h.until("the server's SETTINGS", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		if ok && !sf.IsAck() {
			if v, _ := sf.Value(http2.SettingEnableConnectProtocol); v != 1 {
				t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL %d, want 1", v)
			}
			must(t, h.fr.WriteSettingsAck())
		}
		return ok && !sf.IsAck()
	})
	h.buf.Reset()
	for _, f := range [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
		{":authority", "example.com"}, {":path", "/ws"}, {"sec-websocket-version", "13"}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	must(t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.buf.Bytes(), EndHeaders: true}))
	return h
}
