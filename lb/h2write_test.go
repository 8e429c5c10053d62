package lb_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// serveH2Handler serves h on a loopback http.Server configured by
// lb.ConfigureHTTP2, over TLS when tlsConf is set and as h2c otherwise,
// with srv.HTTP2 set to conf, and returns its address.
func serveH2Handler(t *testing.T, h http.Handler, tlsConf *tls.Config, conf *http.HTTP2Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConf, HTTP2: conf}
	must(t, lb.ConfigureHTTP2(srv, lb.HTTP2Options{Cleartext: tlsConf == nil}))
	done := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			done <- srv.ServeTLS(ln, "", "")
		} else {
			done <- srv.Serve(ln)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// streamBody is the body of stream n: bytes that depend on n and on the
// offset, in chunks of varying sizes.
func streamBody(n int) []byte {
	size := 1 + (n*7919)%40000
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(n*131 + i ^ i>>7)
	}
	return b
}

// TestH2WriterOrder runs many concurrent streams over one HTTP/2
// connection, over TLS and h2c, each response written in small flushed
// chunks, and checks every body arrives whole and unchanged: the frames of
// the interleaved streams leave the batching writer in order.
func TestH2WriterOrder(t *testing.T) {
	ca := testutil.NewCA(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := streamBody(n)
		f := w.(http.Flusher)
		for step := 1; len(body) > 0; step++ {
			k := min(len(body), step*97%5000+1)
			if _, err := w.Write(body[:k]); err != nil {
				return
			}
			f.Flush()
			body = body[k:]
		}
	})
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"h2c", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var tlsConf *tls.Config
			tr := &http.Transport{}
			scheme := "http"
			if tc.tls {
				tlsConf = ca.ServerConfig(t, "localhost")
				tlsConf.NextProtos = []string{"h2"}
				tr.TLSClientConfig = ca.ClientConfig("localhost")
				tr.ForceAttemptHTTP2 = true
				scheme = "https"
			} else {
				protos := new(http.Protocols)
				protos.SetUnencryptedHTTP2(true)
				tr.Protocols = protos
			}
			t.Cleanup(tr.CloseIdleConnections)
			addr := serveH2Handler(t, handler, tlsConf, nil)
			client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			const workers, each = 64, 4
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					for i := range each {
						n := g*each + i
						resp, err := client.Get(fmt.Sprintf("%s://%s/?n=%d", scheme, addr, n))
						if err != nil {
							t.Errorf("stream %d: %v", n, err)
							return
						}
						got, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil {
							t.Errorf("stream %d: %v", n, err)
							return
						}
						if resp.ProtoMajor != 2 {
							t.Errorf("stream %d over %s, want HTTP/2", n, resp.Proto)
						}
						if !bytes.Equal(got, streamBody(n)) {
							t.Errorf("stream %d: body of %d bytes differs from the %d written", n, len(got), len(streamBody(n)))
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestHTTP2WriteByteTimeout checks that an HTTP/2 client that stops
// reading is cut after the server's WriteByteTimeout, over TLS and h2c:
// the batch writes carry the timeout the server's own writes had.
func TestHTTP2WriteByteTimeout(t *testing.T) {
	ca := testutil.NewCA(t)
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"h2c", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cut := make(chan time.Duration, 1)
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				start := time.Now()
				p := make([]byte, 32<<10)
				for range 8 << 10 { // 256 MiB at most: far past the socket buffers
					if _, err := w.Write(p); err != nil {
						break
					}
				}
				cut <- time.Since(start)
			})
			var tlsConf *tls.Config
			if tc.tls {
				tlsConf = ca.ServerConfig(t, "localhost")
				tlsConf.NextProtos = []string{"h2"}
			}
			addr := serveH2Handler(t, handler, tlsConf, &http.HTTP2Config{WriteByteTimeout: timeout})
			d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
				})
				return nil
			}}
			var c net.Conn
			raw, err := d.Dial("tcp", addr)
			must(t, err)
			defer raw.Close()
			c = raw
			if tc.tls {
				conf := ca.ClientConfig("localhost")
				conf.NextProtos = []string{"h2"}
				tc := tls.Client(raw, conf)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				must(t, tc.Handshake())
				tc.SetDeadline(time.Time{})
				c = tc
			}
			// A request with windows wide open, then no more reading.
			_, err = io.WriteString(c, http2.ClientPreface)
			must(t, err)
			fr := http2.NewFramer(c, c)
			must(t, fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}))
			must(t, fr.WriteWindowUpdate(0, 1<<31-1-65535))
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "localhost"}, {":path", "/"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			must(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}))
			select {
			case d := <-cut:
				t.Logf("cut after %v", d)
			case <-time.After(10 * time.Second):
				t.Fatalf("a client that reads nothing was not cut in 10s (WriteByteTimeout %v)", timeout)
			}
			// The connection is closed: what it holds drains, then it ends.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("the connection still open after the cut (%d bytes read)", n)
			}
		})
	}
}
