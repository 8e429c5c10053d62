package lb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// ConnInfo describes a client connection. Adapters fill it in as they learn
// more (the tlsmode package sets SNI, ALPN and TLS; a PROXY protocol reader
// replaces Remote).
type ConnInfo struct {
	// Frontend is the name of the frontend that accepted the connection.
	Frontend string
	// Remote is the client's address: the socket peer, or the address carried
	// by a trusted PROXY header.
	Remote netip.AddrPort
	// Local is the address the client connected to.
	Local netip.AddrPort
	// SNI and ALPN are the server name and the protocols the client offered
	// in its ClientHello, when a tlsmode adapter has read them.
	SNI  string
	ALPN []string
	// TLS is the state of the TLS session lbkit terminated, nil otherwise.
	TLS *tls.ConnectionState
	// Accepted is when the frontend accepted the connection.
	Accepted time.Time
}

// PickInfo returns the balancing information of the connection.
func (i *ConnInfo) PickInfo() PickInfo { return PickInfo{Client: i.Remote, SNI: i.SNI} }

// AddrPortOf returns the address of a net.Addr as a netip.AddrPort, with
// IPv4-mapped IPv6 addresses unmapped. It returns the zero value for
// addresses that are not IP addresses.
func AddrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// maxPeek bounds what Conn.Peek buffers: the largest TLS record plus its header.
const maxPeek = 16384 + 5 + 256

// ErrPeekTooLarge is returned by Conn.Peek for requests beyond its bound.
var ErrPeekTooLarge = errors.New("lb: peek larger than 16 KiB")

// Conn is a client connection on its way through a chain of Backends. It
// embeds the connection it wraps; reads first return the bytes that Peek
// buffered, so that peeking never consumes.
//
// A Conn is used by one goroutine at a time, except that Close and
// SetDeadline may be called concurrently, as on any net.Conn.
type Conn struct {
	net.Conn
	Info ConnInfo

	buf []byte // peeked, not yet read: buf[off:]
	off int
	fe  *frontendStats // of the TCPFrontend that accepted it, nil otherwise

	access AccessLogger // the TCPFrontend's AccessLog
	// hold tracks the connection for the TCPFrontend that accepted it
	// (nil otherwise), also after its Backend returned: see connHold.
	hold *connHold
}

// NewConn wraps c for a chain of Backends, filling Remote, Local and
// Accepted. frontend names the frontend in ConnInfo.
func NewConn(c net.Conn, frontend string) *Conn {
	return &Conn{Conn: c, Info: ConnInfo{
		Frontend: frontend,
		Remote:   AddrPortOf(c.RemoteAddr()),
		Local:    AddrPortOf(c.LocalAddr()),
		Accepted: time.Now(),
	}}
}

// Peek returns the next n bytes without consuming them, reading from the
// connection as needed; later reads return them again. It returns fewer than
// n bytes only with an error. Peeks are bounded to 16 KiB plus a TLS record
// header. Set a read deadline first: Peek blocks like Read.
func (c *Conn) Peek(n int) ([]byte, error) {
	if n > maxPeek {
		return nil, ErrPeekTooLarge
	}
	for len(c.buf)-c.off < n {
		if c.off > 0 { // compact so the buffer does not grow past maxPeek
			c.buf = append(c.buf[:0], c.buf[c.off:]...)
			c.off = 0
		}
		if cap(c.buf) < n {
			nb := make([]byte, len(c.buf), max(n, 512))
			copy(nb, c.buf)
			c.buf = nb
		}
		m, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+m]
		if err != nil {
			if len(c.buf)-c.off >= n {
				break
			}
			return c.buf[c.off:], err
		}
	}
	return c.buf[c.off : c.off+n], nil
}

// Buffered returns the peeked bytes not read yet. They stay buffered.
func (c *Conn) Buffered() []byte { return c.buf[c.off:] }

// Read reads peeked bytes first, then from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if c.off < len(c.buf) {
		n := copy(p, c.buf[c.off:])
		c.off += n
		if c.off == len(c.buf) {
			c.buf, c.off = nil, 0
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Unwrap returns the wrapped connection. Bytes returned by Buffered must be
// handled before reading from it.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// TakeBuffered returns the peeked bytes not read yet and forgets them, for
// callers that copy from Unwrap directly (to splice).
func (c *Conn) TakeBuffered() []byte {
	b := c.buf[c.off:]
	c.buf, c.off = nil, 0
	return b
}

// CloseWrite shuts down the writing side of the connection, when the wrapped
// connection supports it (*net.TCPConn, *tls.Conn, *net.UnixConn).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("lb: %T has no CloseWrite", c.Conn)
}

// WithConn returns a new Conn with c's Info, counting in the statistics and
// the access log of c's frontend, that reads and writes through nc, typically a layer over c
// itself (tls.Server(c, config)), which then reads c's peeked bytes first.
// Adapters use it to decorate the connection.
func (c *Conn) WithConn(nc net.Conn) *Conn {
	return &Conn{Conn: nc, Info: c.Info, fe: c.fe, access: c.access, hold: c.hold}
}

var _ io.ReadWriteCloser = (*Conn)(nil)

// connUnder finds the connection of type T under c, looking through the
// NetConn method of tls.Conn and the Unwrap method of lbkit's own wrappers
// (at most 8 layers); the zero T if there is none.
func connUnder[T net.Conn](c net.Conn) T {
	for range 8 {
		if v, ok := c.(T); ok {
			return v
		}
		switch v := c.(type) {
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ Unwrap() net.Conn }:
			c = v.Unwrap()
		default:
			var zero T
			return zero
		}
	}
	var zero T
	return zero
}
