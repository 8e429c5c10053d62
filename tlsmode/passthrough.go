package tlsmode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/lbkit/lbkit/internal/clienthello"
	"github.com/lbkit/lbkit/lb"
)

// MaxClientHello bounds the bytes PeekClientHello buffers: record headers
// included, a ClientHello must fit in 16 KiB.
const MaxClientHello = 16 << 10

const recordHeaderLen = 5

// PeekClientHello reads the client's ClientHello from c without consuming
// it, parses it with crypto/tls, and returns what the client asked for. The
// bytes stay buffered in c, so that whatever serves c next (a Pool that
// splices, or Offload) reads them again. It fills c.Info.SNI and
// c.Info.ALPN.
//
// Reads block like Read: the caller bounds them with a read deadline (a
// TCPFrontend sets its HandshakeTimeout). It returns an error wrapping
// ErrNotTLS when c does not start with a TLS handshake record, and
// ErrClientHello when the hello is malformed or larger than MaxClientHello.
func PeekClientHello(c *lb.Conn) (*tls.ClientHelloInfo, error) {
	n, err := clientHelloLen(c)
	if err != nil {
		return nil, err
	}
	b, err := c.Peek(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrClientHello, err)
	}
	hello, err := ParseClientHello(b)
	if err != nil {
		return nil, err
	}
	c.Info.SNI = hello.ServerName
	c.Info.ALPN = hello.SupportedProtos
	return hello, nil
}

// PeekSNI reads the client's ClientHello from c without consuming it, like
// PeekClientHello, and fills c.Info.SNI and c.Info.ALPN: what Passthrough
// does for every connection. It parses the hello with lbkit's own reader
// (no crypto/tls handshake, no allocation besides the two fields), about
// 20 times cheaper than PeekClientHello; use PeekClientHello when the
// rest of the hello (cipher suites, curves, versions) matters.
//
// It accepts the hellos crypto/tls accepts, with the same server name and
// protocols, except that it refuses records crypto/tls tolerates (empty
// ones, warning alerts among them, versions other than 3.x), server names
// longer than 255 bytes and ALPN lists longer than 512 bytes. Errors are
// those of PeekClientHello.
func PeekSNI(c *lb.Conn) error {
	n, err := clientHelloLen(c)
	if err != nil {
		return err
	}
	b, err := c.Peek(n)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrClientHello, err)
	}
	var h clienthello.Hello
	if err := clienthello.Parse(b, &h); err != nil {
		return fmt.Errorf("%w: %w", ErrClientHello, err)
	}
	c.Info.SNI = string(h.ServerName())
	c.Info.ALPN = nil
	if h.NumALPN() > 0 {
		c.Info.ALPN = make([]string, 0, h.NumALPN())
		for p := range h.ALPN() {
			c.Info.ALPN = append(c.Info.ALPN, protoString(p))
		}
	}
	return nil
}

// protoString returns p as a string, without allocating for the protocols
// that clients commonly offer.
func protoString(p []byte) string {
	switch string(p) {
	case "h2":
		return "h2"
	case "http/1.1":
		return "http/1.1"
	case "http/1.0":
		return "http/1.0"
	case "h3":
		return "h3"
	case "acme-tls/1":
		return "acme-tls/1"
	}
	return string(p)
}

// clientHelloLen peeks record headers until the records hold the whole
// handshake message, and returns how many bytes they span.
func clientHelloLen(c *lb.Conn) (int, error) {
	n := 0
	need := -1 // handshake message bytes still to cover; unknown until the first record
	for {
		h, err := c.Peek(n + recordHeaderLen)
		if err != nil {
			if n == 0 && len(h) > 0 && h[0] != recordTypeHandshake {
				return 0, ErrNotTLS
			}
			return 0, fmt.Errorf("%w: %w", ErrClientHello, err)
		}
		h = h[n:]
		if h[0] != recordTypeHandshake || h[1] != 3 {
			if n == 0 {
				return 0, ErrNotTLS
			}
			return 0, fmt.Errorf("%w: record type %d", ErrClientHello, h[0])
		}
		rlen := int(h[3])<<8 | int(h[4])
		if rlen == 0 || n+recordHeaderLen+rlen > MaxClientHello {
			return 0, fmt.Errorf("%w: record length %d", ErrClientHello, rlen)
		}
		if need < 0 {
			// The handshake header (type, 24-bit length) starts the first record.
			hb, err := c.Peek(recordHeaderLen + min(rlen, 4))
			if err != nil {
				return 0, fmt.Errorf("%w: %w", ErrClientHello, err)
			}
			if rlen < 4 || hb[recordHeaderLen] != handshakeTypeClientHello {
				return 0, fmt.Errorf("%w: not a ClientHello", ErrClientHello)
			}
			need = 4 + (int(hb[6])<<16 | int(hb[7])<<8 | int(hb[8]))
		}
		n += recordHeaderLen + rlen
		if need -= rlen; need <= 0 {
			return n, nil
		}
	}
}

const (
	recordTypeHandshake      = 22
	handshakeTypeClientHello = 1
)

// errHelloRead stops the handshake once the ClientHello is parsed.
var errHelloRead = errors.New("tlsmode: hello read")

// ParseClientHello parses the TLS records in b that hold a ClientHello, by
// running a crypto/tls server handshake over them that stops as soon as
// crypto/tls has parsed the hello: the parser is the standard library's, not
// a second one. b is not modified nor retained. The returned info's Conn is
// nil.
func ParseClientHello(b []byte) (*tls.ClientHelloInfo, error) {
	var hello *tls.ClientHelloInfo
	cfg := &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			cp := *h
			cp.Conn = nil
			cp.SupportedProtos = append([]string(nil), h.SupportedProtos...)
			hello = &cp
			return nil, errHelloRead
		},
	}
	err := tls.Server(&helloConn{b: b}, cfg).Handshake()
	if hello == nil {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrClientHello, err)
	}
	return hello, nil
}

// helloConn is a read-only net.Conn over the peeked bytes; writes (the
// alert crypto/tls sends when the handshake stops) are discarded.
type helloConn struct {
	b   []byte
	off int
}

func (c *helloConn) Read(p []byte) (int, error) {
	if c.off >= len(c.b) {
		return 0, io.EOF
	}
	n := copy(p, c.b[c.off:])
	c.off += n
	return n, nil
}

func (c *helloConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return helloAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return helloAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

type helloAddr struct{}

func (helloAddr) Network() string { return "peek" }
func (helloAddr) String() string  { return "peek" }

// Passthrough returns a Backend that peeks the ClientHello of each
// connection (PeekSNI), records the SNI and ALPN in Conn.Info, and
// hands the same connection, bytes untouched, to next: typically an lb.Mux
// routing by SNI to Pools that copy the client's own TLS session to the
// servers (and splice). Connections that do not start with a valid
// ClientHello are closed and logged at Debug level.
//
// The peek is bounded by MaxClientHello and by the read deadline the
// TCPFrontend sets (HandshakeTimeout).
func Passthrough(next lb.Backend) *PassthroughBackend {
	return &PassthroughBackend{Next: next}
}

// PassthroughBackend is the Backend that Passthrough returns. Set its
// fields before it serves; it is then safe for concurrent use.
type PassthroughBackend struct {
	// Next serves the connections, ClientHello still unread.
	Next lb.Backend
	// Logger receives connections without a ClientHello at Debug level;
	// nil means slog.Default().
	Logger *slog.Logger
}

// ServeConn peeks the ClientHello of c (PeekSNI) and passes c on to Next.
func (p *PassthroughBackend) ServeConn(ctx context.Context, c *lb.Conn) {
	if err := PeekSNI(c); err != nil {
		logger(p.Logger).LogAttrs(ctx, slog.LevelDebug, "tlsmode: no ClientHello",
			slog.String("client", c.Info.Remote.String()), slog.Any("error", err))
		c.Close()
		return
	}
	p.Next.ServeConn(ctx, c)
}
