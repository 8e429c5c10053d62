package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultServerTimeout bounds the wait for a server's response headers.
const DefaultServerTimeout = 5 * time.Minute

// ReverseProxy is the L7 path: an http.Handler that forwards each request to
// a server chosen by a Pool. It is built on httputil.ReverseProxy with
// Rewrite: hop-by-hop headers are removed, and X-Forwarded-For, -Host, -Proto
// and -Port are rebuilt from the connection, never trusted from the client.
// The client's Host header is kept. WebSocket and other upgrades become
// tunnels that Shutdown waits for and Close ends.
//
// A failed connection to a server is retried on another one (the Pool's
// Retries; nothing was sent yet). Errors become 503 when no server is
// available or the queue timed out, 504 when the server timed out, and 502
// otherwise, through ErrorHandler.
//
// Each Pool gets one tuned http.Transport, shared by all requests to it and
// created on first use: keep-alive connections (up to 1024 idle per server),
// no compression, 16 KiB buffers, dialing through the Pool (its Dial and
// ConnectTimeout). A purpose-built HTTP/1.1 engine can replace it behind the
// same API through NewTransport.
//
// Configure the exported fields before the first request.
type ReverseProxy struct {
	// Pool is where requests go, unless Route says otherwise.
	Pool *Pool

	// Route, when set, chooses the Pool of each request (by Host or path);
	// a nil result means Pool.
	Route func(r *http.Request) *Pool

	// Scheme is the scheme spoken to servers: "http" (the default) or
	// "https". With "https", TLSClientConfig configures the client side.
	Scheme string

	// TLSClientConfig is the TLS configuration towards servers when Scheme
	// is "https". Nil means the defaults of crypto/tls (servers verified
	// against the system roots).
	TLSClientConfig *tls.Config

	// ServerTimeout bounds the wait for the server's response headers. Zero
	// means DefaultServerTimeout.
	ServerTimeout time.Duration

	// NewTransport, when set, builds the RoundTripper that talks to the
	// servers of a Pool; dial is the Pool's dialer to use for its
	// connections. Nil means a tuned http.Transport.
	NewTransport func(p *Pool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) http.RoundTripper

	// Fallback serves requests when the Pool has no pickable server. Nil
	// means a 503 response.
	Fallback http.Handler

	// ErrorHandler answers requests that failed. Nil means a plain-text
	// response with the status of StatusForError.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// ModifyResponse, when set, may change the server's response.
	ModifyResponse func(*http.Response) error

	// FlushInterval is httputil.ReverseProxy's: zero means buffered
	// copies except for streamed responses, negative flushes every write.
	FlushInterval time.Duration

	// Logger receives proxy errors at Debug level; nil means slog.Default().
	Logger *slog.Logger

	proxies sync.Map // *Pool → *httputil.ReverseProxy
	streams streamTracker
	bufs    bufferPool
}

// ServeHTTP forwards r to a server of its Pool.
func (p *ReverseProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pool := p.Pool
	if p.Route != nil {
		if rp := p.Route(r); rp != nil {
			pool = rp
		}
	}
	if pool == nil || len(pool.Snapshot().Servers) == 0 {
		p.noServer(w, r, ErrNoServer)
		return
	}
	p.proxyFor(pool).ServeHTTP(w, r)
}

func (p *ReverseProxy) noServer(w http.ResponseWriter, r *http.Request, err error) {
	if p.Fallback != nil {
		p.Fallback.ServeHTTP(w, r)
		return
	}
	p.fail(w, r, err)
}

func (p *ReverseProxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	if p.ErrorHandler != nil {
		p.ErrorHandler(w, r, err)
		return
	}
	if r.Context().Err() == nil {
		p.logger().LogAttrs(r.Context(), slog.LevelDebug, "proxy error",
			slog.String("client", r.RemoteAddr), slog.String("host", r.Host),
			slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	code := StatusForError(err)
	http.Error(w, http.StatusText(code), code)
}

// StatusForError maps a proxying error to the status a client gets: 503 when
// no server is available or the queue timed out, 504 on a server timeout,
// 502 otherwise.
func StatusForError(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNoServer), errors.Is(err, ErrQueueTimeout):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func (p *ReverseProxy) proxyFor(pool *Pool) *httputil.ReverseProxy {
	if v, ok := p.proxies.Load(pool); ok {
		return v.(*httputil.ReverseProxy)
	}
	scheme := p.Scheme
	if scheme == "" {
		scheme = "http"
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = "" // set per attempt by poolTransport
			setForwarded(pr)
		},
		Transport:      &poolTransport{pool: pool, base: p.transport(pool), streams: &p.streams},
		FlushInterval:  p.FlushInterval,
		BufferPool:     &p.bufs,
		ModifyResponse: p.ModifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, ErrNoServer) {
				p.noServer(w, r, err)
				return
			}
			p.fail(w, r, err)
		},
		ErrorLog: discardLog,
	}
	v, _ := p.proxies.LoadOrStore(pool, rp)
	return v.(*httputil.ReverseProxy)
}

// setForwarded rebuilds the X-Forwarded-* headers; httputil has already
// removed the client's X-Forwarded-For, -Host and -Proto in Rewrite mode.
func setForwarded(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	if ap, err := netip.ParseAddrPort(pr.In.RemoteAddr); err == nil {
		h["X-Forwarded-For"] = []string{ap.Addr().Unmap().String()}
	}
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	h["X-Forwarded-Proto"] = []string{proto}
	h["X-Forwarded-Host"] = []string{pr.In.Host}
	delete(h, "X-Forwarded-Port")
	if la, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap := AddrPortOf(la); ap.IsValid() {
			h["X-Forwarded-Port"] = []string{strconv.Itoa(int(ap.Port()))}
		}
	}
}

func (p *ReverseProxy) transport(pool *Pool) http.RoundTripper {
	dial := pool.dialAddr
	if p.NewTransport != nil {
		return p.NewTransport(pool, dial)
	}
	timeout := p.ServerTimeout
	if timeout <= 0 {
		timeout = DefaultServerTimeout
	}
	return &http.Transport{
		DialContext:           dial,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
		TLSClientConfig:       p.TLSClientConfig,
		ForceAttemptHTTP2:     p.Scheme == "https",
	}
}

// dialAddr opens a connection to the server at addr for an HTTP transport,
// within the connect timeout. It never applies Pool.TLS: the transport
// encrypts itself when Scheme is "https", and would otherwise encrypt twice.
func (p *Pool) dialAddr(ctx context.Context, network, addr string) (net.Conn, error) {
	return p.dial(ctx, &Server{Name: addr, Addr: addr}, nil, true)
}

// Shutdown waits for the upgraded streams (WebSockets) to end, or for ctx to
// be done, in which case it returns ctx's error. Use it next to
// http.Server.Shutdown, which does not track them; Serve does both.
func (p *ReverseProxy) Shutdown(ctx context.Context) error { return p.streams.wait(ctx) }

// Close ends every upgraded stream now.
func (p *ReverseProxy) Close() error {
	p.streams.closeAll()
	return nil
}

// ActiveStreams reports the upgraded streams in progress.
func (p *ReverseProxy) ActiveStreams() int { return p.streams.len() }

func (p *ReverseProxy) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// poolTransport picks a server of its Pool for every round trip, retrying
// connection failures on other servers, and holds the Lease until the
// response body is closed.
type poolTransport struct {
	pool    *Pool
	base    http.RoundTripper
	streams *streamTracker
}

func (t *poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := PickInfo{Request: req}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		info.Client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	retries := t.pool.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	var body *replayableBody
	if req.Body != nil && req.Body != http.NoBody && retries > 0 {
		body = &replayableBody{rc: req.Body}
		req.Body = body
	}
	for attempt := 0; ; attempt++ {
		lease, err := t.pool.Acquire(req.Context(), info)
		if err != nil {
			body.release()
			return nil, err
		}
		req.URL.Host = lease.Server.Addr
		resp, err := t.base.RoundTrip(req)
		if err == nil {
			body.release()
			t.wrapBody(resp, lease)
			return resp, nil
		}
		var ce *ConnectError
		connect := errors.As(err, &ce)
		lease.Done(Outcome{Err: err, Connect: connect})
		if !connect || attempt >= retries || req.Context().Err() != nil || body.started() {
			body.release()
			return nil, err
		}
		info.Avoid = append(info.Avoid, lease.Server)
	}
}

// wrapBody makes closing the response body end the lease; an upgraded
// stream's body is also tracked for Shutdown.
func (t *poolTransport) wrapBody(resp *http.Response, lease Lease) {
	o := Outcome{Status: resp.StatusCode}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		s := &leasedStream{ReadWriteCloser: rwc, lease: lease, outcome: o, tracker: t.streams}
		t.streams.add(s)
		resp.Body = s
		return
	}
	resp.Body = &leasedBody{ReadCloser: resp.Body, lease: lease, outcome: o}
}

// leasedBody ends its Lease on the first Close.
type leasedBody struct {
	io.ReadCloser
	lease   Lease
	outcome Outcome
	once    sync.Once
}

func (b *leasedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.lease.Done(b.outcome) })
	return err
}

// leasedStream is the server side of an upgraded connection.
type leasedStream struct {
	io.ReadWriteCloser
	lease   Lease
	outcome Outcome
	tracker *streamTracker
	once    sync.Once
}

func (s *leasedStream) Close() error {
	err := s.ReadWriteCloser.Close()
	s.once.Do(func() {
		s.tracker.remove(s)
		s.lease.Done(s.outcome)
	})
	return err
}

// replayableBody lets a request body be offered again to another server
// after a connection failure, as long as nothing of it was read: the
// transport closes bodies on error, so closing is deferred to release.
type replayableBody struct {
	rc   io.ReadCloser
	read bool
}

func (b *replayableBody) Read(p []byte) (int, error) {
	b.read = true
	return b.rc.Read(p)
}

func (b *replayableBody) Close() error { return nil }

func (b *replayableBody) started() bool { return b != nil && b.read }

func (b *replayableBody) release() {
	if b != nil {
		b.rc.Close()
	}
}

// streamTracker tracks upgraded streams for Shutdown and Close.
type streamTracker struct {
	mu      sync.Mutex
	streams map[io.Closer]struct{}
	empty   chan struct{} // closed when streams becomes empty, while waited on
}

func (t *streamTracker) add(c io.Closer) {
	t.mu.Lock()
	if t.streams == nil {
		t.streams = make(map[io.Closer]struct{})
	}
	t.streams[c] = struct{}{}
	t.mu.Unlock()
}

func (t *streamTracker) remove(c io.Closer) {
	t.mu.Lock()
	delete(t.streams, c)
	if len(t.streams) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
	t.mu.Unlock()
}

func (t *streamTracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.streams)
}

func (t *streamTracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if len(t.streams) == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	ch := t.empty
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *streamTracker) closeAll() {
	t.mu.Lock()
	all := make([]io.Closer, 0, len(t.streams))
	for c := range t.streams {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

// bufferPool is httputil.BufferPool over a bounded free list of 32 KiB
// buffers; unlike a sync.Pool of slices it does not allocate on Put.
type bufferPool struct {
	once sync.Once
	free chan []byte
}

func (b *bufferPool) init() { b.free = make(chan []byte, 256) }

func (b *bufferPool) Get() []byte {
	b.once.Do(b.init)
	select {
	case buf := <-b.free:
		return buf
	default:
		return make([]byte, 32<<10)
	}
}

func (b *bufferPool) Put(buf []byte) {
	b.once.Do(b.init)
	select {
	case b.free <- buf[:cap(buf)]:
	default:
	}
}
