package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/lbkit/lbkit/internal/h1"
)

// HTTPFrontend serves the Handler of an http.Server with lbkit's own
// HTTP/1.1 server engine instead of net/http's, for proxied traffic: an
// idle keep-alive client costs a parked socket (about 1 KB of heap)
// instead of a goroutine and two 4 KiB buffers: lbproxy's RSS grows by
// about 1.9 KB per idle client instead of 21 KB with net/http's server
// (scripts/idlemem.sh, in BENCHMARKS.md). That figure needs the host to
// bound its garbage and return free heap once quiet, as lbproxy's
// -gc-headroom and -idle-trim do: with Go's defaults the runtime keeps up
// to the heap goal's worth of freed memory, about 3.8 KB per client
// there. It fits Serve and ServeTLS as an *http.Server does:
//
//	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second, ConnState: proxy.ConnState}
//	lb.ConfigureHTTP2(srv, lb.HTTP2Options{}) // optional, as with net/http
//	fe, err := lb.NewHTTPFrontend(srv)
//	...
//	err = lb.ServeTLS(ctx, fe, ln, grace, proxy)
//
// Supported, from srv: Handler, ReadHeaderTimeout, ReadTimeout,
// WriteTimeout, IdleTimeout, MaxHeaderBytes, ConnState (called in
// net/http's order), ConnContext, BaseContext, ErrorLog, TLSConfig,
// TLSNextProto and Protocols (HTTP/2 through ALPN and, with
// UnencryptedHTTP2, prior knowledge, both handed to the HTTP/2 server
// ConfigureHTTP2 set up), DisableGeneralOptionsHandler. Requests: HTTP/1.0
// and 1.1, keep-alive and pipelining (served in order), Expect:
// 100-continue, chunked request and response bodies with trailers, HEAD,
// http.Flusher, http.Hijacker (WebSocket and other upgrades),
// http.ResponseController's deadlines and EnableFullDuplex, the request's
// context cancelled when the client closes its connection, graceful
// Shutdown and Close, and handler panics recovered as net/http does
// (http.ErrAbortHandler is silent).
//
// What differs from net/http: between requests, a plain TCP connection
// keeps its goroutine and read buffer for a short hot window (100 ms), then
// is parked without either until its next bytes or IdleTimeout; IdleTimeout
// is then enforced within about 100 ms. Connections, and the handlers of
// HTTP/2 streams, run on long-lived worker goroutines whose stacks earlier
// requests have grown (idle workers retire after a second or two), not on a
// goroutine each; a handler that calls runtime.Goexit ends its worker, and
// an HTTP/2 handler's panic is raised again on the stream's goroutine, its
// text carrying the handler's own stack. Request parsing is at least as
// strict as net/http's, with its error statuses (400, 431, 501, 505, 417);
// it refuses an empty Content-Length, which some net/http versions let
// through. Response headers are written in map order, not sorted. srv's own
// Serve, ListenAndServe and SetKeepAlivesEnabled are not used: srv is only
// read, and must not change once serving began. The cleartext "Upgrade:
// h2c" handshake is not served (ReverseProxy refuses it anyway).
type HTTPFrontend struct {
	// Logger receives the engine's events (TLS handshake errors at
	// Debug) and, when the http.Server has no ErrorLog, handler panics.
	// Nil means slog.Default(). Set it before Serve.
	Logger *slog.Logger

	// QuickAck keeps the kernel's quick ACKs on accepted connections. By
	// default Serve and ServeTLS turn them off, on Linux, as HAProxy's
	// "option tcp-smart-accept" does in HTTP mode: a request's ACK then
	// rides on its response, one packet less per new connection. They
	// set it once on a plain TCP listener that exposes its socket
	// (accepted sockets inherit it), else on each accepted connection
	// (one setsockopt each): an MPTCP listener (Go's net.Listen default
	// since Go 1.24) refuses it, so listen with
	// net.ListenConfig.SetMultipathTCP(false), as lb/config and lbproxy
	// do. A client that writes a request in several small pieces without
	// TCP_NODELAY may wait for the kernel's delayed ACK (up to about 40
	// ms) between them; set QuickAck for such clients. Set it before
	// Serve.
	QuickAck bool

	srv *http.Server
	eng *h1.Server
}

// NewHTTPFrontend returns a frontend that serves srv's Handler with
// lbkit's HTTP/1.1 engine (see HTTPFrontend). srv must not be nil.
func NewHTTPFrontend(srv *http.Server) (*HTTPFrontend, error) {
	if srv == nil {
		return nil, errors.New("lb: NewHTTPFrontend: nil http.Server")
	}
	return &HTTPFrontend{srv: srv, eng: &h1.Server{Config: srv}}, nil
}

// Serve accepts connections on ln and serves them until Shutdown or Close;
// it then returns ErrFrontendClosed (http.ErrServerClosed).
func (f *HTTPFrontend) Serve(ln net.Listener) error {
	f.eng.Logger, f.eng.QuickAck = f.Logger, f.QuickAck
	return f.eng.Serve(ln)
}

// ServeTLS serves HTTPS on ln as http.Server.ServeTLS does: with the
// http.Server's TLSConfig, plus the certificate in certFile and keyFile
// when set.
func (f *HTTPFrontend) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	f.eng.Logger, f.eng.QuickAck = f.Logger, f.QuickAck
	return f.eng.ServeTLS(ln, certFile, keyFile)
}

// Shutdown stops accepting, closes idle connections and waits for the
// active ones, as http.Server.Shutdown does; it returns ctx's error if ctx
// ends first.
func (f *HTTPFrontend) Shutdown(ctx context.Context) error { return f.eng.Shutdown(ctx) }

// Close closes the listeners and every connection at once.
func (f *HTTPFrontend) Close() error { return f.eng.Close() }

// Server returns the http.Server the frontend was made from.
func (f *HTTPFrontend) Server() *http.Server { return f.srv }

// IdleConns returns the number of client connections the frontend holds
// and how many of them are parked (idle, without goroutine or buffer).
func (f *HTTPFrontend) IdleConns() (conns, parked int) { return f.eng.Conns() }

// TLSFrontend is a Frontend that also serves HTTPS: an *http.Server or an
// *HTTPFrontend.
type TLSFrontend interface {
	Frontend
	ServeTLS(ln net.Listener, certFile, keyFile string) error
}

var (
	_ TLSFrontend = (*http.Server)(nil)
	_ TLSFrontend = (*HTTPFrontend)(nil)
	_ Shutdowner  = (*HTTPFrontend)(nil)
)
