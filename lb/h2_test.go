package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// startH2 serves proxy on a loopback http.Server configured by
// lb.ConfigureHTTP2 with opts (over TLS when tlsConf is set), with the
// proxy's ConnContext and ConnState hooks, and returns its address.
func startH2(t *testing.T, proxy *lb.ReverseProxy, opts lb.HTTP2Options, tlsConf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: proxy.ConnContext, ConnState: proxy.ConnState, TLSConfig: tlsConf}
	must(t, lb.ConfigureHTTP2(srv, opts))
	if opts.Cleartext && opts.HTTP2Only {
		ln = lb.H2CListener(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		fe := frontendOf(t, srv)
		if tlsConf != nil {
			done <- lb.ServeTLS(ctx, fe, ln, time.Second, proxy)
		} else {
			done <- lb.Serve(ctx, fe, ln, time.Second, proxy)
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// h2cClient returns a client that speaks only cleartext HTTP/2 with prior
// knowledge.
func h2cClient(t *testing.T) *http.Client {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestH2CToClients checks prior-knowledge h2c on a plain frontend: requests
// go through the same proxy (forwarded headers, access log, connection
// counts), HTTP/1.1 still works on the same port, and Upgrade: h2c is
// still not honoured.
func TestH2CToClients(t *testing.T) {
	backend := testutil.HTTPBackend(t, "b1")
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Name: "b1", Addr: backend.Addr}}))
	var mu sync.Mutex
	var protos []string
	proxy := &lb.ReverseProxy{Pool: pool, AccessLog: lb.AccessLoggerFunc(func(r *lb.AccessRecord) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
	})}
	addr := startH2(t, proxy, lb.HTTP2Options{Cleartext: true}, nil)

	c := h2cClient(t)
	for i := range 3 {
		resp, err := c.Get("http://" + addr + "/h2c")
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
			t.Fatalf("request %d: %s over %s, want 200 over HTTP/2.0", i, resp.Status, resp.Proto)
		}
	}
	req, ok := backend.LastRequest()
	if !ok || req.URI != "/h2c" || req.Header.Get("X-Forwarded-For") != "127.0.0.1" || req.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("the server got %+v, want /h2c forwarded for 127.0.0.1 over http", req)
	}
	if st := proxy.Stats(); st.ConnTotal != 1 || st.ConnCur != 1 {
		t.Errorf("connections: total %d, open %d; want 1 and 1 (one multiplexed connection)", st.ConnTotal, st.ConnCur)
	}

	// HTTP/1.1 on the same port.
	h1 := &http.Transport{}
	defer h1.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h1, Timeout: 10 * time.Second}).Get("http://" + addr + "/h1")
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 client: %s over %s", resp.Status, resp.Proto)
	}

	// curl, when installed, as a second h2c client.
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--http2-prior-knowledge", "-o", "/dev/null",
			"-w", "%{http_version} %{http_code}", "http://"+addr+"/curl").CombinedOutput()
		if err != nil || string(out) != "2 200" {
			t.Errorf("curl --http2-prior-knowledge: %q, %v; want \"2 200\"", out, err)
		}
	} else if testutil.InCI() {
		t.Error("curl not found (Debian package curl): scripts/test.sh installs it")
	}

	// The HTTP/1.1 upgrade to h2c is refused: the request is served as
	// HTTP/1.1, and so is the next one on the connection.
	raw, err := net.Dial("tcp", addr)
	must(t, err)
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(raw)
	for _, req := range []string{
		"GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
		"GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		_, err := io.WriteString(raw, req)
		must(t, err)
		resp, err := http.ReadResponse(br, nil)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" {
			t.Errorf("%q: %s %s, want HTTP/1.1 200", strings.SplitN(req, "\r\n", 2)[0], resp.Proto, resp.Status)
		}
	}
	if req, _ := backend.LastRequest(); req.Header.Get("Upgrade") != "" || req.Header.Get("Http2-Settings") != "" {
		t.Errorf("the server was asked to upgrade: %v", req.Header)
	}

	mu.Lock()
	if len(protos) < 3 || protos[0] != "HTTP/2.0" {
		t.Errorf("access log protocols %q, want HTTP/2.0 first", protos)
	}
	mu.Unlock()
}

// TestH2CToServers checks ServerH2C against a server that speaks only
// cleartext HTTP/2: requests reach it over HTTP/2 through the Pool, a dead
// server is retried on another one, and a server that speaks only
// HTTP/1.1 is a 502.
func TestH2CToServers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	var mu sync.Mutex
	var seen []string
	h2only := &http.Server{Protocols: protos, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Proto)
			mu.Unlock()
			io.WriteString(w, "h2c "+r.URL.Path)
		})}
	go h2only.Serve(ln)
	t.Cleanup(func() { h2only.Close() })

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	deadAddr := dead.Addr().String()
	dead.Close()

	pool := &lb.Pool{Retries: 2}
	must(t, pool.Update([]lb.Server{{Name: "dead", Addr: deadAddr}, {Name: "h2c", Addr: ln.Addr().String()}}))
	proxy := &lb.ReverseProxy{Pool: pool, ServerH2C: true}
	addr, stop := startL7(t, proxy, time.Second)
	defer stop()

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 4 {
		resp, err := client.Get(addr + "/x")
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "h2c /x" {
			t.Fatalf("request %d: %s %q", i, resp.Status, body)
		}
	}
	mu.Lock()
	if len(seen) != 4 || seen[0] != "HTTP/2.0" {
		t.Errorf("the server saw %q, want 4 requests over HTTP/2.0", seen)
	}
	mu.Unlock()
	for _, s := range pool.Stats().Servers {
		if s.Name == "h2c" && s.Requests != 4 {
			t.Errorf("server h2c counted %d requests, want 4", s.Requests)
		}
	}

	// An h2c client through an h2c frontend to the h2c server.
	proxy2 := &lb.ReverseProxy{Pool: pool, ServerH2C: true}
	addr2 := startH2(t, proxy2, lb.HTTP2Options{Cleartext: true, HTTP2Only: true}, nil)
	resp, err := h2cClient(t).Get("http://" + addr2 + "/both")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || string(body) != "h2c /both" {
		t.Errorf("h2c end to end: %s %q", resp.Proto, body)
	}

	// The same proxy towards an HTTP/1.1-only server fails: it does speak
	// HTTP/2.
	h1pool := &lb.Pool{Retries: -1}
	must(t, h1pool.Update([]lb.Server{{Addr: testutil.HTTPBackend(t, "h1").Addr}}))
	addr3, stop3 := startL7(t, &lb.ReverseProxy{Pool: h1pool, ServerH2C: true}, time.Second)
	defer stop3()
	resp, err = client.Get(addr3 + "/")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("h2c to an HTTP/1.1 server: %s, want 502", resp.Status)
	}
}

// h2Raw is a raw HTTP/2 client connection for the conformance checks.
type h2Raw struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer

	streams uint32 // streams opened
}

func dialH2Raw(t *testing.T, addr string, settings ...http2.Setting) *h2Raw {
	t.Helper()
	return dialH2RawTo(t, addr, false, settings...)
}

// trickle writes one byte per write, so that the server reads frames in
// pieces.
type trickle struct{ net.Conn }

func (c trickle) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// dialH2RawTo is dialH2Raw, writing a byte at a time when slow is set.
func dialH2RawTo(t *testing.T, addr string, slow bool, settings ...http2.Setting) *h2Raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, http2.ClientPreface)
	must(t, err)
	var w io.Writer = c
	if slow {
		w = trickle{c}
	}
	h := &h2Raw{t: t, c: c, fr: http2.NewFramer(w, c)}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.buf)
	must(t, h.fr.WriteSettings(settings...))
	return h
}

// headers sends a request on stream with the fields given as name, value
// pairs after the pseudo-header fields, indexed by the encoder as it likes.
func (h *h2Raw) headers(stream uint32, fields ...string) {
	h.buf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", "/"}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(fields); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	must(h.t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.buf.Bytes(), EndStream: true, EndHeaders: true}))
}

// until reads frames until want returns true, failing on a GOAWAY unless
// want takes it, or when the connection ends.
func (h *h2Raw) until(what string, want func(http2.Frame) bool) http2.Frame {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("waiting for %s: %v", what, err)
		}
		if want(f) {
			return f
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			h.t.Fatalf("waiting for %s: GOAWAY %v", what, ga.ErrCode)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			must(h.t, h.fr.WriteSettingsAck())
		}
	}
}

// TestHTTP2Conformance checks, with a raw HTTP/2 client, the three places
// where ConfigureHTTP2 differs from net/http's server: repeated settings,
// connection-specific fields (with the HPACK tables kept in step for the
// next request) and the advertised frame size.
func TestHTTP2Conformance(t *testing.T) {
	backend := testutil.HTTPBackend(t, "b1")
	pool := &lb.Pool{}
	must(t, pool.Update([]lb.Server{{Addr: backend.Addr}}))
	for _, tc := range []struct {
		name string
		opts lb.HTTP2Options
		slow bool
	}{
		{"h2c", lb.HTTP2Options{Cleartext: true}, false},
		{"h2c-only", lb.HTTP2Options{Cleartext: true, HTTP2Only: true}, false},
		{"byte-by-byte", lb.HTTP2Options{Cleartext: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startH2(t, &lb.ReverseProxy{Pool: pool}, tc.opts, nil)

			h := dialH2RawTo(t, addr, tc.slow,
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
			h.until("the SETTINGS ACK", func(f http2.Frame) bool {
				sf, ok := f.(*http2.SettingsFrame)
				return ok && sf.IsAck()
			})

			for _, bad := range [][]string{{"connection", "keep-alive"}, {"te", "gzip"}, {"x-a", "1", "transfer-encoding", "chunked"}} {
				stream := h.nextStream()
				h.headers(stream, bad...)
				f := h.until("RST_STREAM", func(f http2.Frame) bool {
					_, rst := f.(*http2.RSTStreamFrame)
					_, hd := f.(*http2.MetaHeadersFrame)
					return (rst || hd) && f.Header().StreamID == stream
				})
				if rst, ok := f.(*http2.RSTStreamFrame); !ok || rst.ErrCode != http2.ErrCodeProtocol {
					t.Errorf("request with %q: %v, want RST_STREAM PROTOCOL_ERROR", bad, f)
				}
			}
			// A valid request after them, whose fields the encoder takes
			// from its dynamic table: both tables are still in step. With
			// a window of 1 byte, the response comes 1 byte per frame.
			stream := h.nextStream()
			h.headers(stream, "x-a", "1", "te", "trailers")
			f := h.until("the response", func(f http2.Frame) bool {
				return f.Header().StreamID == stream
			})
			mh, ok := f.(*http2.MetaHeadersFrame)
			if !ok || mh.PseudoValue("status") != "200" {
				t.Fatalf("valid request after malformed ones: %v", f)
			}
			df := h.until("DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok })
			if n := len(df.(*http2.DataFrame).Data()); n != 1 {
				t.Errorf("DATA of %d bytes with SETTINGS_INITIAL_WINDOW_SIZE 1 (sent after 100)", n)
			}
			if req, _ := backend.LastRequest(); req.Header.Get("X-A") != "1" {
				t.Errorf("the server got %v, want X-A: 1", req.Header)
			}

			// A HEADERS frame beyond the advertised 16 KiB.
			h2 := dialH2Raw(t, addr)
			h2.until("the server's SETTINGS", func(f http2.Frame) bool {
				sf, ok := f.(*http2.SettingsFrame)
				if ok && !sf.IsAck() {
					if v, _ := sf.Value(http2.SettingMaxFrameSize); v != lb.DefaultHTTP2MaxFrameSize {
						t.Errorf("SETTINGS_MAX_FRAME_SIZE %d, want %d", v, lb.DefaultHTTP2MaxFrameSize)
					}
				}
				return ok && !sf.IsAck()
			})
			h2.fr.SetMaxReadFrameSize(1 << 20)
			h2.headers(1, "x-big", strings.Repeat("a", 40000)) // 25 kB once Huffman-coded
			f = h2.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
			if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeFrameSize {
				t.Errorf("HEADERS of 25 kB: GOAWAY %v, want FRAME_SIZE_ERROR", ga.ErrCode)
			}
		})
	}
}

func (h *h2Raw) nextStream() uint32 {
	h.streams += 2
	return h.streams - 1
}
