package clienthello_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// capture returns the first flight of a crypto/tls client with cfg: the
// records that carry its ClientHello.
func capture(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	cli, srv := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(cli, cfg)
		c.Handshake()
		c.Close()
	}()
	defer func() {
		srv.Close() // ends the client's handshake
		<-done
	}()
	var buf bytes.Buffer
	b := make([]byte, 4096)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := srv.Read(b)
		buf.Write(b[:n])
		if err != nil {
			tb.Fatalf("reading hello: %v", err)
		}
		if buf.Len() >= 5 && buf.Len() >= 5+int(binary.BigEndian.Uint16(buf.Bytes()[3:])) {
			return buf.Bytes()
		}
	}
}

// resumed returns the hello of a client resuming a session it got from a
// real handshake with a TLS server on 127.0.0.1: it carries a
// pre_shared_key (TLS 1.3) or a session ticket (TLS 1.2).
func resumed(tb testing.TB, maxVersion uint16) []byte {
	tb.Helper()
	ca := testutil.NewCA(tb)
	scfg := ca.ServerConfig(tb, "resume.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, scfg)
		if err := tc.Handshake(); err != nil {
			served <- err
			return
		}
		_, err = tc.Write([]byte("x")) // TLS 1.3 tickets come after the handshake
		served <- err
	}()
	ccfg := ca.ClientConfig("resume.test")
	ccfg.MaxVersion = maxVersion
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	d := tls.Dialer{Config: ccfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		tb.Fatal(err)
	}
	c.Close()
	if err := <-served; err != nil {
		tb.Fatal(err)
	}
	return capture(tb, ccfg)
}

// split re-frames the handshake message of a one-record hello into records
// of at most n bytes of payload.
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

// withExtensions returns a one-record hello with exts (type, then data)
// added at the start of its extensions, lengths updated.
func withExtensions(tb testing.TB, hello []byte, exts ...[]byte) []byte {
	tb.Helper()
	msg := hello[5:]
	p := 4 + 2 + 32
	p += 1 + int(msg[p])                            // session id
	p += 2 + int(binary.BigEndian.Uint16(msg[p:]))  // cipher suites
	p += 1 + int(msg[p])                            // compression
	extLen := int(binary.BigEndian.Uint16(msg[p:])) // extensions
	var add []byte
	for _, e := range exts {
		add = binary.BigEndian.AppendUint16(add, binary.BigEndian.Uint16(e))
		add = binary.BigEndian.AppendUint16(add, uint16(len(e)-2))
		add = append(add, e[2:]...)
	}
	out := append([]byte{}, msg[:p]...)
	out = binary.BigEndian.AppendUint16(out, uint16(extLen+len(add)))
	out = append(out, add...)
	out = append(out, msg[p+2:]...)
	n := len(out) - 4
	out[1], out[2], out[3] = byte(n>>16), byte(n>>8), byte(n)
	rec := []byte{22, 3, 1, byte(len(out) >> 8), byte(len(out))}
	return append(rec, out...)
}

// ext builds an extension for withExtensions: its type and its data.
func ext(typ uint16, data ...byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, typ), data...)
}

// errStop ends the oracle's handshake once the hello is read.
var errStop = errors.New("hello read")

// oracle parses b with crypto/tls: a server handshake over b that stops in
// GetConfigForClient. It returns the hello crypto/tls saw, or nil when it
// rejected b.
func oracle(b []byte) *tls.ClientHelloInfo {
	var hello *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		cp := *h
		hello = &cp
		return nil, errStop
	}}
	tls.Server(&readConn{r: bytes.NewReader(b)}, cfg).Handshake()
	return hello
}

// readConn is a net.Conn that reads from r and discards writes.
type readConn struct{ r *bytes.Reader }

func (c *readConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *readConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readConn) Close() error                     { return nil }
func (c *readConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *readConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *readConn) SetDeadline(time.Time) error      { return nil }
func (c *readConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readConn) SetWriteDeadline(time.Time) error { return nil }
