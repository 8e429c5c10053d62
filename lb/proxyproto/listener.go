package proxyproto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/proxyv2"
	"github.com/lbkit/lbkit/lb"
)

// Defaults of [Listener]'s zero-valued fields.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultMaxHeader     = 4096
)

// ErrBadHeader is wrapped by the errors of a PROXY header that a trusted
// peer sent malformed, truncated, oversized or not at all.
var ErrBadHeader = errors.New("proxyproto: bad PROXY header")

// Policy says what a [Listener] does with a connection from a peer
// outside its trusted networks.
type Policy int

const (
	// Reject closes connections from untrusted peers at once. It is
	// the zero value: a listener that expects PROXY headers is usually
	// reachable only through its upstream.
	Reject Policy = iota
	// UseSocket serves connections from untrusted peers as they are,
	// with the socket's addresses; a PROXY header they send is not parsed
	// and stays in the data.
	UseSocket
)

// Listener accepts connections behind another load balancer that
// sends PROXY protocol headers (v1 or v2, detected), as HAProxy's
// accept-proxy does. Connections from the Trusted networks must start with
// a header; the returned connections report the carried addresses as
// RemoteAddr and LocalAddr, so the client address replaces the socket's
// everywhere downstream: [lb.ConnInfo].Remote ([lb.NewConn]), [http.Request].RemoteAddr
// and so X-Forwarded-For, ACLs, stickiness, logs and the PROXY headers
// lbkit sends on. A header with the LOCAL command (the upstream's health
// checks) or an address family other than IPv4 or IPv6 leaves the socket's
// addresses.
//
// Headers are read in one goroutine per new connection, within
// HeaderTimeout and MaxHeader bytes, so a slow or silent peer never delays
// Accept for others. A trusted peer whose header is malformed, truncated,
// oversized or late is closed and logged at Debug level; Accept goes on with
// the next connection. Connections from other peers follow Untrusted.
//
// The connections it returns also have the methods Unwrap() net.Conn (the
// socket) and TakeBuffered() []byte (the bytes read past the header and not
// read yet, handed over once), as [lb.Conn] has, so that an [lb.Pool]
// copying a session can still splice the socket.
//
// Set the fields before the first Accept and do not change them afterwards.
// Accept, Close and Addr are safe for concurrent use; Close closes Listener,
// and the connections whose header is being read, and waits for those
// goroutines to end.
type Listener struct {
	// Listener is the listener to accept from. Required.
	Listener net.Listener

	// Trusted lists the networks allowed to send PROXY headers; the peer's
	// socket address is matched (IPv4-mapped IPv6 addresses unmapped). An
	// empty list trusts no one.
	Trusted []netip.Prefix

	// Untrusted is the policy for peers outside Trusted. The zero value is
	// Reject.
	Untrusted Policy

	// HeaderTimeout bounds the time a trusted peer has to send its header.
	// Zero means DefaultHeaderTimeout.
	HeaderTimeout time.Duration

	// MaxHeader bounds the size of a header, TLVs included; larger headers
	// are rejected. Zero means DefaultMaxHeader; values below 108 (a
	// complete v1 header) are raised to 108. Whatever its value, v2 headers
	// that announce more than 4096 bytes after their fixed 16 are rejected
	// (the bound of the go-proxyproto parser lbkit uses).
	MaxHeader int

	// Logger receives rejected connections at Debug level; nil means
	// slog.Default().
	Logger *slog.Logger

	start   sync.Once
	closeMu sync.Once
	results chan acceptResult
	stopped chan struct{} // closed when the accept loop ends
	closed  chan struct{} // closed by Close
	err     error         // the accept loop's last error, set before stopped
	wg      sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // headers being read
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (l *Listener) init() {
	l.results = make(chan acceptResult)
	l.stopped = make(chan struct{})
	l.closed = make(chan struct{})
	l.pending = make(map[net.Conn]struct{})
	l.wg.Add(1)
	go l.acceptLoop()
}

// Accept returns the next connection that is ready: from a trusted peer
// with its header read, or from another peer under UseSocket.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(l.init)
	select {
	case r := <-l.results:
		return r.c, r.err
	case <-l.stopped:
		return nil, l.err
	}
}

// Close closes the listener and the connections whose header is being read.
func (l *Listener) Close() error {
	l.start.Do(l.init)
	var err error
	l.closeMu.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return err
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.Listener.Addr() }

// acceptLoop accepts from the inner listener until it fails for good,
// handing temporary errors to Accept.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				if !l.deliver(acceptResult{err: err}) {
					return
				}
				continue
			}
			l.err = err
			close(l.stopped)
			return
		}
		peer := lb.AddrPortOf(c.RemoteAddr()).Addr()
		switch {
		case l.trusted(peer):
			l.mu.Lock()
			select {
			case <-l.closed:
				l.mu.Unlock()
				c.Close()
				continue
			default:
			}
			l.pending[c] = struct{}{}
			l.wg.Add(1)
			l.mu.Unlock()
			go l.handshake(c)
		case l.Untrusted == UseSocket:
			if !l.deliver(acceptResult{c: c}) {
				c.Close()
			}
		default:
			l.logger().LogAttrs(context.Background(), slog.LevelDebug, "connection from untrusted peer refused",
				slog.String("peer", c.RemoteAddr().String()))
			c.Close()
		}
	}
}

// deliver hands r to Accept, or reports false once the listener is closed.
func (l *Listener) deliver(r acceptResult) bool {
	select {
	case l.results <- r:
		return true
	case <-l.closed:
		return false
	}
}

func (l *Listener) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range l.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// handshake reads the header of c and hands the connection to Accept.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	pc, err := l.readHeader(c)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		l.logger().LogAttrs(context.Background(), slog.LevelDebug, "PROXY header rejected",
			slog.String("peer", c.RemoteAddr().String()), slog.Any("error", err))
		c.Close()
		return
	}
	if !l.deliver(acceptResult{c: pc}) {
		c.Close()
	}
}

func (l *Listener) readHeader(c net.Conn) (net.Conn, error) {
	timeout := l.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	limit := l.MaxHeader
	if limit <= 0 {
		limit = DefaultMaxHeader
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	h, rest, err := proxyv2.Read(c, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	pc := &conn{Conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(), rest: rest}
	if !h.Local && h.Src.IsValid() && h.Dst.IsValid() {
		pc.remote = net.TCPAddrFromAddrPort(h.Src)
		pc.local = net.TCPAddrFromAddrPort(h.Dst)
	}
	return pc, nil
}

func (l *Listener) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// conn is a connection whose PROXY header was read: it reports the
// carried addresses and returns the bytes read past the header first.
type conn struct {
	net.Conn
	remote, local net.Addr
	rest          []byte
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }
func (c *conn) LocalAddr() net.Addr  { return c.local }

func (c *conn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Unwrap returns the socket. Bytes returned by TakeBuffered must be handled
// before reading from it.
func (c *conn) Unwrap() net.Conn { return c.Conn }

// TakeBuffered returns the bytes read past the header and not read yet, and
// forgets them, for callers that copy from Unwrap directly (to splice).
func (c *conn) TakeBuffered() []byte {
	b := c.rest
	c.rest = nil
	return b
}

// CloseWrite half-closes the connection when the socket supports it.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("proxyproto: %T has no CloseWrite", c.Conn)
}

var _ net.Listener = (*Listener)(nil)
