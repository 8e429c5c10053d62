package lb

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
)

// isExtendedConnect reports whether r is an RFC 8441 extended CONNECT for
// a WebSocket over HTTP/2, which net/http and x/net/http2 deliver only in
// a process started with GODEBUG=http2xconnect=1.
func isExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodConnect &&
		strings.EqualFold(r.Header.Get(":protocol"), "websocket")
}

// serveExtendedConnect proxies a WebSocket over HTTP/2 (RFC 8441) to the
// server's HTTP/1.1 WebSocket upgrade (RFC 6455): the CONNECT becomes a GET
// with Upgrade: websocket and a new Sec-WebSocket-Key; the server's 101
// becomes a 200, after which the stream's DATA and the server connection's
// bytes are copied both ways until either side ends (the server connection
// cannot be half-closed: the client's END_STREAM closes it). The stream is
// tracked for Shutdown and Close like any upgraded stream.
func (p *ReverseProxy) serveExtendedConnect(w http.ResponseWriter, r *http.Request, pool *Pool) {
	rp := p.proxyFor(pool)
	out := r.Clone(r.Context())
	out.Method = http.MethodGet
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.RequestURI = ""
	out.Body, out.ContentLength = nil, 0
	h := out.Header
	for _, k := range []string{":protocol", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
		delete(h, k)
	}
	key := make([]byte, 16)
	rand.Read(key)
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	if h.Get("Sec-WebSocket-Version") == "" {
		h.Set("Sec-WebSocket-Version", "13")
	}
	p.rewrite(r, out, new([4]string))
	resp, err := rp.Transport.RoundTrip(out)
	if err == nil {
		// ModifyResponse, and the count of the response, as for an
		// HTTP/1.1 upgrade.
		if err = rp.ModifyResponse(resp); err != nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		rp.ErrorHandler(w, r, err)
		return
	}
	defer resp.Body.Close()
	stream, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode == http.StatusSwitchingProtocols && !ok {
		// A 101 without a stream to tunnel: nothing the client can use.
		rp.ErrorHandler(w, r, errors.New("lb: server answered 101 without a stream"))
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The server refused the upgrade: its answer goes to the client,
		// without the HTTP/1.1 connection's own fields, which are
		// malformed in an HTTP/2 response (RFC 9113 section 8.2.2).
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		for _, k := range []string{"Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer"} {
			w.Header().Del(k)
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	for _, k := range []string{"Sec-Websocket-Protocol", "Sec-Websocket-Extensions"} {
		if v := resp.Header[k]; len(v) > 0 {
			w.Header()[k] = v
		}
	}
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(stream, r.Body)
		// The client ended its side (END_STREAM) or left: the upgraded
		// connection, which cannot be half-closed, ends too.
		stream.Close()
	}()
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	for {
		n, err := stream.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil || rc.Flush() != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	stream.Close()
	r.Body.Close()
	<-done
}
