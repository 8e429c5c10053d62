package tlsmode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// bytesConn is a net.Conn that reads b, in chunks of at most chunk bytes.
type bytesConn struct {
	r     *bytes.Reader
	chunk int
}

func (c *bytesConn) Read(p []byte) (int, error) {
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}
func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// split re-frames the handshake message of a one-record ClientHello into
// records of at most n bytes of payload, as some clients do.
func split(hello []byte, n int) []byte {
	msg := hello[5:]
	var out []byte
	for len(msg) > 0 {
		k := min(n, len(msg))
		out = append(out, 22, hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

func TestPeekClientHello(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "peek.test", NextProtos: []string{"h2"}})
	tooBig := append([]byte{22, 3, 1, 0x40, 0x01}, make([]byte, 0x4001)...)
	tests := []struct {
		name    string
		in      []byte
		chunk   int
		wantErr error
	}{
		{"one record", hello, 0, nil},
		{"read byte by byte", hello, 1, nil},
		{"several records", split(hello, 100), 0, nil},
		{"followed by data", append(append([]byte{}, hello...), "more"...), 0, nil},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), 0, tlsmode.ErrNotTLS},
		{"truncated", hello[:len(hello)-10], 0, tlsmode.ErrClientHello},
		{"record too large", tooBig, 0, tlsmode.ErrClientHello},
		{"not a client hello", []byte{22, 3, 1, 0, 4, 2, 0, 0, 0}, 0, tlsmode.ErrClientHello},
		{"empty", nil, 0, tlsmode.ErrClientHello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lb.NewConn(&bytesConn{r: bytes.NewReader(tt.in), chunk: tt.chunk}, "test")
			h, err := tlsmode.PeekClientHello(c)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err == nil && (h.ServerName != "peek.test" || c.Info.SNI != "peek.test" || len(c.Info.ALPN) != 1) {
				t.Errorf("hello %q, Info %+v", h.ServerName, c.Info)
			}
			// Nothing was consumed.
			all, _ := io.ReadAll(c)
			if !bytes.Equal(all, tt.in) {
				t.Errorf("read back %d bytes, want the %d sent", len(all), len(tt.in))
			}

			// PeekSNI, Passthrough's peek, agrees.
			c = lb.NewConn(&bytesConn{r: bytes.NewReader(tt.in), chunk: tt.chunk}, "test")
			err = tlsmode.PeekSNI(c)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("PeekSNI: err %v, want %v", err, tt.wantErr)
			}
			if err == nil && (c.Info.SNI != "peek.test" || len(c.Info.ALPN) != 1 || c.Info.ALPN[0] != "h2") {
				t.Errorf("PeekSNI: Info %+v", c.Info)
			}
			if all, _ := io.ReadAll(c); !bytes.Equal(all, tt.in) {
				t.Errorf("PeekSNI: read back %d bytes, want the %d sent", len(all), len(tt.in))
			}
		})
	}
}

func FuzzPeekClientHello(f *testing.F) {
	hello := clientHello(f, &tls.Config{ServerName: "fuzz.test"})
	f.Add(hello, 0)
	f.Add(split(hello, 7), 3)
	f.Add([]byte{22, 3, 1, 0, 1, 1}, 1)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		c := lb.NewConn(&bytesConn{r: bytes.NewReader(in), chunk: chunk % 64}, "fuzz")
		if _, err := tlsmode.PeekClientHello(c); err == nil && len(c.Buffered()) > tlsmode.MaxClientHello+5 {
			t.Fatalf("buffered %d bytes", len(c.Buffered()))
		}
		if all, _ := io.ReadAll(c); !bytes.Equal(all, in) {
			t.Fatal("peek consumed bytes")
		}
		c = lb.NewConn(&bytesConn{r: bytes.NewReader(in), chunk: chunk % 64}, "fuzz")
		if err := tlsmode.PeekSNI(c); err == nil && len(c.Buffered()) > tlsmode.MaxClientHello+5 {
			t.Fatalf("PeekSNI buffered %d bytes", len(c.Buffered()))
		}
		if all, _ := io.ReadAll(c); !bytes.Equal(all, in) {
			t.Fatal("PeekSNI consumed bytes")
		}
	})
}

// TestPassthroughKeepsRawConn checks that the next Backend gets the same
// socket, with the hello buffered, so that the Pool can splice.
func TestPassthroughKeepsRawConn(t *testing.T) {
	testutil.CheckLeaks(t)
	type seen struct {
		tcp      bool
		buffered int
	}
	got := make(chan seen, 1)
	addr := serveL4(t, tlsmode.Passthrough(lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		_, tcp := c.Unwrap().(*net.TCPConn)
		got <- seen{tcp, len(c.Buffered())}
		c.Close()
	})))
	hello := clientHello(t, &tls.Config{ServerName: "raw.test"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(hello)
	if s := <-got; !s.tcp || s.buffered != len(hello) {
		t.Errorf("next got TCP %v with %d bytes buffered, want a *net.TCPConn with the %d-byte hello", s.tcp, s.buffered, len(hello))
	}
}
