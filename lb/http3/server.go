package http3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// Defaults of the Server's limits.
const (
	// DefaultHandshakeTimeout bounds a QUIC handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a connection that has had no request open
	// for that long.
	DefaultIdleTimeout = 2 * time.Minute
	// PeerTimeout closes a connection whose peer sent nothing, not even an
	// acknowledgment, for that long (QUIC's max_idle_timeout). The server
	// sends a keep-alive packet every third of it, so a live client answers
	// within it even while a request waits for a slow server.
	PeerTimeout = 30 * time.Second
	// DefaultMaxStreams is the number of requests a client may have open at
	// once on one connection.
	DefaultMaxStreams = 100
	// DefaultMaxHeaderBytes bounds a request's header section.
	DefaultMaxHeaderBytes = 64 << 10
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close; it is [http.ErrServerClosed], which is lb.ErrFrontendClosed.
var ErrServerClosed = http.ErrServerClosed

// errNoTLSConfig is returned by Serve when the Server has no TLSConfig.
var errNoTLSConfig = errors.New("http3: Server.TLSConfig is nil")

// Server serves HTTP/3 over QUIC. It mirrors [http.Server]: set the
// exported fields, then call Serve or ListenAndServe; Shutdown drains and
// Close ends at once. It is safe for concurrent use once serving; its
// fields must not change after the first call to Serve.
//
// A Server serves one UDP socket at a time per call to Serve; several
// calls may share a Server (several sockets), as with http.Server.
type Server struct {
	// Addr is the UDP address ListenAndServe listens on; empty means
	// ":https".
	Addr string

	// Handler serves every request. Nil answers 404 Not Found to all.
	// Requests look to it as they do over HTTP/1.1 and HTTP/2: r.Proto is
	// "HTTP/3.0" (ProtoMajor 3), r.RemoteAddr is the client's UDP address,
	// r.TLS the QUIC connection's TLS state, and the request's context
	// holds http.LocalAddrContextKey. Requests that arrived in 0-RTT carry
	// "Early-Data: 1" (see Is0RTT).
	Handler http.Handler

	// TLSConfig is the TLS configuration of the QUIC handshakes; Serve
	// fails without it. Serve clones it with NextProtos set to "h3" (and
	// so for configurations from GetConfigForClient); GetCertificate,
	// client authentication and WrapSession/UnwrapSession (shared session
	// ticket keys) work as over TCP. QUIC always uses TLS 1.3. The
	// configuration must not change while Serve starts: net/http's
	// ServeTLS adds to the NextProtos of its Server's TLSConfig, so give
	// an HTTPS frontend's configuration through ForServer, or a Clone of
	// it taken before it serves.
	TLSConfig *tls.Config

	// Allow0RTT accepts requests in 0-RTT (TLS early data) from clients
	// resuming a session. False, the default, refuses early data: such
	// requests are replayable by an attacker, so a host enables this only
	// when its handlers (or servers, through the Early-Data header) refuse
	// or are immune to replays of requests that are not safe.
	Allow0RTT bool

	// HandshakeTimeout bounds each QUIC handshake. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// IdleTimeout closes a connection that has had no request open for
	// that long. Zero means DefaultIdleTimeout. A connection whose peer is
	// gone closes after PeerTimeout, with requests open or not.
	IdleTimeout time.Duration

	// MaxStreams bounds the requests open at once on one connection.
	// Zero means DefaultMaxStreams.
	MaxStreams int

	// MaxHeaderBytes bounds the size of a request's header section; larger
	// ones get 431. Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	// ReadTimeout, when positive, bounds the reading of each request's
	// body, from the time the handler is called. Zero means no bound
	// beyond PeerTimeout, which a client sending a byte now and then keeps
	// from expiring.
	ReadTimeout time.Duration

	// ConnContext, when set, derives the context of a new QUIC connection,
	// as http.Server's does. ConnState, when set, is called with
	// http.StateNew when a connection is accepted and http.StateClosed
	// when it ends (the other states do not occur). Both receive the same
	// net.Conn for one connection: a view of the QUIC connection whose
	// LocalAddr and RemoteAddr are its addresses and whose Close closes it;
	// Read, Write and the deadlines fail, as the bytes travel in streams.
	// So lb.ReverseProxy's ConnContext and ConnState work as they do over
	// TCP: QUIC connections count among the proxy's frontend connections,
	// and a Pool's PROXY-header connections are kept per QUIC connection.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	ConnState   func(c net.Conn, state http.ConnState)

	// Limits, when set, applies the frontend's connection limits to QUIC
	// connections: give it the Limits of the ReverseProxy that serves the
	// requests (and of the TCP frontend's listener), so that connections
	// over both count together. A new connection beyond MaxConns or
	// ClientMaxConns is refused at the QUIC layer, before its handshake,
	// with QUIC's CONNECTION_REFUSED error (the client's dial fails):
	// unlike a TCP listener, which pauses and lets new connections wait
	// in the kernel's queue, a QUIC socket has no accept queue to pause.
	// An admitted connection counts until it ends. Once half of MaxConns,
	// or half of a client's ClientMaxConns, is taken, new connections
	// first prove their address with a QUIC Retry (one more round trip),
	// so that forged packets cannot take places in another's name. ClientRate applies to
	// each request, in the ReverseProxy, as over TCP. Nil, the default,
	// limits nothing. See lb.Limits.Admit.
	Limits *lb.Limits

	// Logger receives connection errors at Debug level; nil means
	// slog.Default().
	Logger *slog.Logger

	once  sync.Once
	inner *qhttp3.Server
	ended chan struct{} // closed when a Shutdown or Close has returned
	end   sync.Once
}

// ForServer returns a Server that serves HTTP/3 like srv, the HTTPS
// frontend for the TCP port: it takes srv's Handler, ConnContext,
// ConnState, MaxHeaderBytes, IdleTimeout and ReadTimeout, its Addr for
// ListenAndServe (the UDP port of the same number), and a Clone of its
// TLSConfig, which keeps the GetCertificate hook (certificate reloads and
// ACME reach both) and the session ticket hooks. Call it before srv
// serves, since serving changes srv.TLSConfig. Set the other fields
// (Allow0RTT, a Handler without AltSvc) on the result before serving it.
func ForServer(srv *http.Server) *Server {
	s := &Server{
		Addr:           srv.Addr,
		Handler:        srv.Handler,
		TLSConfig:      srv.TLSConfig.Clone(),
		ConnContext:    srv.ConnContext,
		ConnState:      srv.ConnState,
		MaxHeaderBytes: srv.MaxHeaderBytes,
		IdleTimeout:    srv.IdleTimeout,
		ReadTimeout:    srv.ReadTimeout,
	}
	return s
}

// setup builds the quic-go server once, from the fields.
func (s *Server) setup() *qhttp3.Server {
	s.once.Do(func() {
		s.inner = &qhttp3.Server{
			Addr:           s.Addr,
			TLSConfig:      s.TLSConfig,
			Handler:        http.HandlerFunc(s.serveHTTP),
			MaxHeaderBytes: positiveOr(s.MaxHeaderBytes, DefaultMaxHeaderBytes),
			IdleTimeout:    positiveOr(s.IdleTimeout, DefaultIdleTimeout),
			QUICConfig: &quic.Config{
				HandshakeIdleTimeout: positiveOr(s.HandshakeTimeout, DefaultHandshakeTimeout),
				MaxIdleTimeout:       PeerTimeout,
				KeepAlivePeriod:      PeerTimeout / 3,
				MaxIncomingStreams:   int64(positiveOr(s.MaxStreams, DefaultMaxStreams)),
				Allow0RTT:            s.Allow0RTT,
			},
			ConnContext: s.connContext,
			Logger:      s.logger(),
		}
		s.ended = make(chan struct{})
	})
	return s.inner
}

// Serve serves HTTP/3 on pc until Shutdown or Close, then returns
// ErrServerClosed; any other error ends it at once. Serve does not close
// pc: QUIC connections still draining after Shutdown use it, so close it
// after Shutdown or Close returned (ListenAndServe does so).
func (s *Server) Serve(pc net.PacketConn) error {
	if s.TLSConfig == nil {
		return errNoTLSConfig
	}
	inner := s.setup()
	var err error
	if s.Limits == nil {
		err = inner.Serve(pc)
	} else {
		err = s.serveLimited(inner, pc)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http3: serve %s: %w", pc.LocalAddr(), err)
	}
	return ErrServerClosed
}

// serveLimited serves pc through a quic.Transport whose ConnContext hook
// admits each new connection through s.Limits before its handshake. The
// transport and its listener stay open for the connections that drain
// after Shutdown, and close once Shutdown or Close returned.
func (s *Server) serveLimited(inner *qhttp3.Server, pc net.PacketConn) error {
	tr := &quic.Transport{
		Conn: pc,
		// Admit sees the address of an Initial packet, which can be
		// forged: once the limits are half taken, a client proves its
		// address with a Retry round trip (or a token from an earlier
		// connection) before it counts.
		VerifySourceAddress: s.Limits.Busy,
		ConnContext: func(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
			ctx, err := s.Limits.Admit(ctx, info.RemoteAddr)
			if err != nil {
				s.logger().LogAttrs(ctx, slog.LevelDebug, "http3: connection refused",
					slog.String("client", info.RemoteAddr.String()), slog.Any("error", err))
			}
			return ctx, err
		},
	}
	// ConfigureTLSConfig sets NextProtos to h3 as the quic-go server's
	// Serve does; the HTTP/3 settings it would bind to session tickets
	// for 0-RTT never change here.
	ln, err := tr.ListenEarly(qhttp3.ConfigureTLSConfig(s.TLSConfig), inner.QUICConfig)
	if err != nil {
		tr.Close()
		return err
	}
	err = inner.ServeListener(ln)
	if errors.Is(err, http.ErrServerClosed) {
		go s.closeWhenEnded(ln, tr)
	} else {
		ln.Close()
		tr.Close()
	}
	return err
}

// closeWhenEnded closes the listener and the transport of serveLimited
// once Shutdown or Close has returned: until then connections may still
// drain through them.
func (s *Server) closeWhenEnded(ln *quic.EarlyListener, tr *quic.Transport) {
	<-s.ended
	ln.Close()
	tr.Close()
}

// ListenAndServe listens on the UDP address Addr and serves it like Serve.
// It closes its socket when it returns: after Shutdown or Close returned,
// or on an error.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = ":https"
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("http3: %w", err)
	}
	defer pc.Close()
	err = s.Serve(pc)
	if errors.Is(err, ErrServerClosed) {
		s.wait()
	}
	return err
}

// wait returns when a Shutdown or Close has returned.
func (s *Server) wait() {
	s.setup()
	<-s.ended
}

// markEnded records that a Shutdown or Close returned.
func (s *Server) markEnded() { s.end.Do(func() { close(s.ended) }) }

// Shutdown stops taking connections and requests and drains: each
// connection gets a GOAWAY frame, requests in flight finish, and clients
// close their connections once they have no request open. It returns nil
// when every connection has ended, or ctx's error after closing what is
// left once ctx is done, like http.Server's Shutdown. It fits
// lb.Shutdowner: pass the Server to lb.ServeTLS as also, and the HTTP/3
// side drains with the TCP one.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.markEnded()
	if err := s.setup().Shutdown(ctx); err != nil {
		return fmt.Errorf("http3: shutdown: %w", err)
	}
	return nil
}

// Close ends every connection at once (requests in flight fail) and stops
// serving.
func (s *Server) Close() error {
	defer s.markEnded()
	if err := s.setup().Close(); err != nil {
		return fmt.Errorf("http3: close: %w", err)
	}
	return nil
}

// serveHTTP is the quic-go server's handler: it marks early data and applies
// ReadTimeout before the Handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if Is0RTT(r) {
		// RFC 8470, section 5.1: an intermediary forwarding a request
		// received in early data marks it so.
		r.Header.Set("Early-Data", "1")
	}
	if s.ReadTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.ReadTimeout))
	}
	h := s.Handler
	if h == nil {
		h = http.NotFoundHandler()
	}
	h.ServeHTTP(w, r)
}

// connContext runs the ConnContext and ConnState hooks for a new QUIC
// connection, and arranges the StateClosed call for its end.
func (s *Server) connContext(ctx context.Context, qc *quic.Conn) context.Context {
	if s.ConnContext == nil && s.ConnState == nil {
		return ctx
	}
	c := &conn{qc: qc}
	if s.ConnState != nil {
		s.ConnState(c, http.StateNew)
		context.AfterFunc(qc.Context(), func() { s.ConnState(c, http.StateClosed) })
	}
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c)
		if ctx == nil {
			panic("http3: ConnContext returned nil")
		}
	}
	return ctx
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func positiveOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Is0RTT reports whether r arrived in 0-RTT (TLS early data), before the
// client's handshake was complete: a request that an attacker may have
// replayed. It is false for requests over TCP. A handler that must not
// act on replays answers such requests with 425 Too Early
// (http.StatusTooEarly), and the client sends them again after its
// handshake (RFC 8470). Early data is accepted only with Server.Allow0RTT.
func Is0RTT(r *http.Request) bool {
	return r.ProtoMajor == 3 && r.TLS != nil && !r.TLS.HandshakeComplete
}

// errNotStream is returned by the byte-stream methods of a conn.
var errNotStream = errors.New("http3: a QUIC connection carries streams, not bytes")

// conn is the net.Conn view of a QUIC connection given to the ConnContext
// and ConnState hooks: its addresses and Close are real, its byte-stream
// methods fail.
type conn struct {
	qc *quic.Conn
}

// h3NoError is HTTP/3's H3_NO_ERROR code (RFC 9114, section 8.1).
const h3NoError = 0x100

func (c *conn) Read([]byte) (int, error)         { return 0, errNotStream }
func (c *conn) Write([]byte) (int, error)        { return 0, errNotStream }
func (c *conn) Close() error                     { return c.qc.CloseWithError(h3NoError, "") }
func (c *conn) LocalAddr() net.Addr              { return c.qc.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr             { return c.qc.RemoteAddr() }
func (c *conn) SetDeadline(time.Time) error      { return errNotStream }
func (c *conn) SetReadDeadline(time.Time) error  { return errNotStream }
func (c *conn) SetWriteDeadline(time.Time) error { return errNotStream }
