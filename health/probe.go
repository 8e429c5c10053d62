package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Errors of the probes. Probe errors wrap one of them, with details a person
// can act on ("mysql: unexpected reply: not a MySQL greeting (first byte
// 0x48)").
var (
	// ErrUnexpected means the server answered, but not as the protocol
	// expects: a wrong protocol on the port, or a failed expectation.
	ErrUnexpected = errors.New("health: unexpected reply")
	// ErrRefused means the server answered in protocol and refused the check
	// (an error reply, a failed login, a non-success result).
	ErrRefused = errors.New("health: check refused")
)

// maxReply bounds what a probe reads from a server, whatever the protocol.
const maxReply = 64 << 10

// Probe checks one server. Check returns nil when the server works, or an
// error whose text says why not; it must return by ctx's deadline (the
// Monitor's Timeout). Check is called concurrently for different targets.
type Probe interface {
	Check(ctx context.Context, t Target) error
}

// ProbeFunc adapts a function to the Probe interface.
type ProbeFunc func(ctx context.Context, t Target) error

// Check calls f(ctx, t).
func (f ProbeFunc) Check(ctx context.Context, t Target) error { return f(ctx, t) }

// Target is what a Probe checks. The Monitor fills it for every check; a
// Target built by hand needs only Addr.
type Target struct {
	// Pool is the name of the server's pool.
	Pool string
	// Server is the server checked; nil for a Target built by hand.
	Server *lb.Server
	// Addr is the address to check, "host:port": the server's address with
	// the check port applied.
	Addr string
	// ProxyHeader, when set, is written first on every connection Connect
	// opens, called with a nil *lb.ConnInfo: a PROXY v2 LOCAL header for
	// servers that expect PROXY protocol.
	ProxyHeader lb.HeaderFunc
	// Dial opens the connection; nil means a net.Dialer.
	Dial lb.DialFunc
}

// Connect opens a TCP connection to t.Addr, with ctx's deadline as the
// connection's deadline, and writes t.ProxyHeader. Probes use it so that
// every check honours the check port, the PROXY header and the timeout.
func (t Target) Connect(ctx context.Context) (net.Conn, error) {
	var c net.Conn
	var err error
	if t.Dial != nil {
		c, err = t.Dial(ctx, "tcp", t.Addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", t.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if t.ProxyHeader != nil {
		if err := t.ProxyHeader(c, nil, t.Server); err != nil {
			c.Close()
			return nil, fmt.Errorf("proxy header: %w", err)
		}
	}
	return c, nil
}

// TCP checks that the server accepts a connection. With Send, it writes
// those bytes after connecting; with Expect, the server's first bytes must
// be Expect (read until len(Expect) bytes arrived). With TLS, the check
// completes a TLS handshake first (for servers behind a bridging pool: pass
// the pool's TLS configuration towards the servers), and Send and Expect go
// over TLS.
type TCP struct {
	Send   []byte
	Expect []byte
	// TLS, when not nil, is the client configuration of the handshake. It
	// is cloned; an empty ServerName means the checked address's host.
	TLS *tls.Config
}

// Check implements Probe.
func (p TCP) Check(ctx context.Context, t Target) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("tcp: %w", err)
	}
	defer c.Close()
	if p.TLS != nil {
		cfg := p.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = serverName(t.Addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tcp: %w", &handshakeError{err})
		}
		c = tc
	}
	if len(p.Send) > 0 {
		if _, err := c.Write(p.Send); err != nil {
			return fmt.Errorf("tcp: send: %w", err)
		}
	}
	if len(p.Expect) == 0 {
		return nil
	}
	n := min(len(p.Expect), maxReply)
	got := make([]byte, n)
	if k, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("tcp: read %d of %d expected bytes: %w", k, n, readErr(err))
	}
	if !bytes.Equal(got, p.Expect[:n]) {
		return fmt.Errorf("tcp: %w: got %q, want %q", ErrUnexpected, got, p.Expect[:n])
	}
	return nil
}

// readErr makes read errors readable: a timeout says so, an EOF says the
// server closed.
func readErr(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("connection closed by server: %w", err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no reply before the timeout: %w", err)
	}
	return err
}

// newReader returns a reader that reads at most maxReply bytes of c.
func newReader(c net.Conn) *bufio.Reader {
	return bufio.NewReaderSize(io.LimitReader(c, maxReply), 4096)
}

// closeQuietly sends bye (if any) on c, briefly, and closes it.
func closeQuietly(c net.Conn, bye []byte) {
	if len(bye) > 0 {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(bye)
	}
	c.Close()
}
