package lb

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DefaultHTTP2MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE that
// ConfigureHTTP2 advertises unless srv.HTTP2 sets MaxReadFrameSize: the
// protocol's initial value, which HAProxy keeps too (net/http offers 1 MiB).
const DefaultHTTP2MaxFrameSize = 16 << 10

// HTTP2Options configures ConfigureHTTP2.
type HTTP2Options struct {
	// Cleartext also serves HTTP/2 with prior knowledge (h2c) on
	// connections without TLS: a client that opens with the HTTP/2
	// preface speaks HTTP/2, any other speaks HTTP/1.1. The HTTP/1.1
	// "Upgrade: h2c" handshake stays refused (see ReverseProxy). False,
	// the default, serves HTTP/2 over TLS (ALPN "h2") only.
	Cleartext bool

	// HTTP2Only refuses HTTP/1.x, as HAProxy's "proto h2" does: over TLS
	// only ALPN "h2" is offered, and with Cleartext a connection that does
	// not open with the HTTP/2 preface is closed unanswered. False, the
	// default, serves HTTP/1.1 beside HTTP/2, and answers a request line
	// that is neither HTTP/1.x nor the preface with an HTTP/1.1 400. A
	// cleartext HTTP2Only server should serve an H2CListener.
	HTTP2Only bool
}

// ConfigureHTTP2 makes srv serve HTTP/2 as RFC 9113 requires of a proxy,
// over TLS (ALPN "h2") and, with opts.Cleartext, with prior knowledge on
// plain connections. Call it once, after setting srv.TLSConfig (if any) and
// before srv starts serving.
//
// net/http's HTTP/2 server serves the requests; ConfigureHTTP2 changes
// three things in front of it, which h2spec checks and net/http does
// otherwise:
//
//   - It advertises SETTINGS_MAX_FRAME_SIZE DefaultHTTP2MaxFrameSize
//     (16 KiB) unless srv.HTTP2.MaxReadFrameSize is set, so that a larger
//     frame is the FRAME_SIZE_ERROR the protocol's default implies.
//   - A SETTINGS frame that repeats a setting is processed in order, as the
//     last valid value of each setting, where net/http closes the
//     connection.
//   - A request (or trailer) with a connection-specific header field
//     (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
//     Upgrade) or with TE other than "trailers" is malformed: its stream is
//     reset with PROTOCOL_ERROR, where net/http answers 400.
//
// The last two are a check of the frames the client sends, between the
// connection and the HTTP/2 server: it reads each frame header, holds
// HEADERS, CONTINUATION and SETTINGS frames until complete (at most the
// advertised frame size each, and the header block at most 1 MiB), decodes
// every header block with a second HPACK decoder (whose dynamic table
// follows the server's), and passes everything else through as it comes.
// A malformed block reaches the server with one invalid field appended,
// which makes the server reset the stream and keeps both decoders' tables
// in step. Frames the server would refuse anyway stop the check and go
// through unchanged. Its cost is in BENCHMARKS.md.
//
// The server's writes are batched: x/net/http2 flushes after every round
// of frames it schedules, a write(2) and a TLS record each, which with
// concurrent streams made two to four of them per request. Its flushes are
// copied (64 KiB at most; past that a write waits, and a larger one goes
// through) and written together once the server has nothing more to write
// for the moment. Order is kept; srv.HTTP2.WriteByteTimeout bounds each
// batch write as it did each flush, so a client that stops reading is
// still cut; a failed write closes the connection; and closing writes
// what is pending for at most a second first.
//
// Prior knowledge is recognized by net/http itself (http.Server.Protocols
// with UnencryptedHTTP2, Go 1.24 and later), which hands such connections
// over through TLSNextProto["unencrypted_http2"]: golang.org/x/net/http2/h2c
// is not needed, and its HTTP/1.1 "Upgrade: h2c" path is not wanted.
//
// To serve connections it takes over srv.TLSNextProto and serves HTTP/2
// with golang.org/x/net/http2's server, configured from srv.HTTP2 like
// net/http's own (http2.ConfigureServer, whose graceful shutdown follows
// srv.Shutdown): net/http gives no other way to serve HTTP/2 over a
// connection of the caller's. The ConnState hook of srv sees the checked
// connection for HTTP/2, whose NetConn method returns the one ConnContext
// saw; ReverseProxy.ConnState unwraps it itself.
//
// WebSockets over HTTP/2 (RFC 8441 extended CONNECT) are offered only in a
// process started with GODEBUG=http2xconnect=1 in its environment: net/http
// and x/net/http2 read it once, at initialization, before any code of the
// program runs (a //go:debug directive does not reach them), and otherwise
// neither advertise SETTINGS_ENABLE_CONNECT_PROTOCOL nor accept :protocol.
// With it, a ReverseProxy turns each such stream into the server's
// HTTP/1.1 WebSocket upgrade (see ReverseProxy).
func ConfigureHTTP2(srv *http.Server, opts HTTP2Options) error {
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	if srv.HTTP2.MaxReadFrameSize == 0 {
		srv.HTTP2.MaxReadFrameSize = DefaultHTTP2MaxFrameSize
	}
	if opts.Cleartext || opts.HTTP2Only {
		protos := new(http.Protocols)
		if srv.Protocols != nil {
			*protos = *srv.Protocols
		} else {
			protos.SetHTTP1(true)
			protos.SetHTTP2(true)
		}
		if opts.Cleartext {
			protos.SetUnencryptedHTTP2(true)
		}
		if opts.HTTP2Only {
			protos.SetHTTP1(false)
		}
		srv.Protocols = protos
	}
	h2s := &http2.Server{}
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		return fmt.Errorf("lb: configuring HTTP/2: %w", err)
	}
	frame := int(srv.HTTP2.MaxReadFrameSize)
	table := uint32(srv.HTTP2.MaxDecoderHeaderTableSize)
	if table == 0 {
		table = 4096 // net/http's default SETTINGS_HEADER_TABLE_SIZE
	}
	serve := func(hs *http.Server, c net.Conn, h http.Handler, sawPreface bool) {
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext() // net/http's per-connection context
		}
		var timeout time.Duration
		if hs.HTTP2 != nil {
			timeout = hs.HTTP2.WriteByteTimeout
		}
		hc := newH2Conn(c, sawPreface, frame, table)
		hc.w.timeout = timeout
		var checked net.Conn = hc
		if tc, ok := c.(*tls.Conn); ok {
			checked = &h2TLSConn{hc, tc}
		}
		h2s.ServeConn(checked, &http2.ServeConnOpts{
			Context: ctx, Handler: h, BaseConfig: hs, SawClientPreface: sawPreface,
		})
		hc.Close() // ServeConn closed it; this ensures the writer has ended
	}
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		serve(hs, c, h, false)
	}
	srv.TLSNextProto["unencrypted_http2"] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		// net/http hands over a cleartext connection (its preface read)
		// inside a *tls.Conn that was never started.
		u, ok := c.NetConn().(interface{ UnencryptedNetConn() net.Conn })
		if !ok {
			c.Close()
			return
		}
		serve(hs, u.UnencryptedNetConn(), h, true)
	}
	return nil
}

// HTTP/2 frame types and flags the check reads (RFC 9113 section 6).
const (
	h2FrameHeaders      = 0x1
	h2FrameSettings     = 0x4
	h2FrameContinuation = 0x9

	h2FlagEndStream  = 0x1
	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2HeaderLen = 9
	// h2MaxBlock bounds a header block held across CONTINUATION frames.
	h2MaxBlock = 1 << 20
	// h2ReadSize is the least room a read from the connection gets.
	h2ReadSize = 4 << 10
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// invalidField is an HPACK literal without indexing of the field "X:", whose
// upper-case name makes the HTTP/2 server reset the stream with
// PROTOCOL_ERROR without touching the dynamic table.
var invalidField = []byte{0x00, 0x01, 'X', 0x00}

// h2Conn checks the frames a client sends to an HTTP/2 server (see
// ConfigureHTTP2). Reads run on the server's one reader goroutine; writes
// and the other methods are the connection's own.
type h2Conn struct {
	net.Conn

	preface  int  // bytes of the client preface still to pass
	off      bool // checking stopped: everything passes as is
	skip     int  // payload bytes of the current frame to pass as is
	maxFrame int
	err      error // the connection's read error, after out drains

	buf    []byte // storage of in
	in     []byte // read, not yet checked
	out    []byte // checked, not yet returned
	outPos int

	// The header block being assembled.
	inBlock   bool
	held      []byte // its frames as received
	block     []byte // its fragments
	stream    uint32
	endStream bool
	malformed bool

	dec *hpack.Decoder

	w *h2Writer // the connection's writes
}

func newH2Conn(c net.Conn, sawPreface bool, maxFrame int, table uint32) *h2Conn {
	h := &h2Conn{Conn: c, maxFrame: maxFrame, w: newH2Writer(c, 0)}
	if !sawPreface {
		h.preface = len(h2Preface)
	}
	h.dec = hpack.NewDecoder(table, h.checkField)
	h.dec.SetMaxStringLength(h2MaxBlock)
	return h
}

// NetConn returns the connection the frames are read from.
func (c *h2Conn) NetConn() net.Conn { return c.Conn }

// Write queues p for the connection (h2Writer.Write).
func (c *h2Conn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close writes what is queued, for at most a second, and closes the
// connection.
func (c *h2Conn) Close() error { return c.w.Close() }

// SetWriteDeadline sets the write deadline unless the server's
// WriteByteTimeout bounds every write (h2Writer.SetWriteDeadline).
func (c *h2Conn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// SetDeadline sets the read deadline and, as SetWriteDeadline does, the
// write deadline.
func (c *h2Conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.w.SetWriteDeadline(t)
}

// h2TLSConn is an h2Conn over TLS: the server takes its TLS state (for
// Request.TLS) from ConnectionState, and refuses a connection that has the
// method but no TLS 1.2 or later.
type h2TLSConn struct {
	*h2Conn
	tc *tls.Conn
}

// ConnectionState returns the TLS state of the connection.
func (c *h2TLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// unwrapH2 returns the connection under a checked HTTP/2 connection.
func unwrapH2(c net.Conn) net.Conn {
	switch h := c.(type) {
	case *h2Conn:
		return h.Conn
	case *h2TLSConn:
		return h.Conn
	}
	return c
}

func (c *h2Conn) Read(p []byte) (int, error) {
	for {
		if c.outPos < len(c.out) {
			n := copy(p, c.out[c.outPos:])
			c.outPos += n
			if c.outPos == len(c.out) {
				c.out, c.outPos = c.out[:0], 0
			}
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.off && len(c.in) == 0 {
			return c.Conn.Read(p)
		}
		if c.skip > 0 && len(c.in) == 0 {
			// Payload passes straight through.
			n, err := c.Conn.Read(p[:min(len(p), c.skip)])
			c.skip -= n
			return n, err
		}
		if cap(c.in)-len(c.in) < h2ReadSize {
			c.buf = make([]byte, 2*len(c.in)+h2ReadSize)
			c.in = c.buf[:copy(c.buf, c.in)]
		}
		n, err := c.Conn.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		if err != nil {
			c.flushHeld()
			c.out = append(c.out, c.in...)
			c.in = c.in[:0]
			c.err = err
		}
		c.process()
	}
}

// process moves what it can from in to out, checking complete frames.
func (c *h2Conn) process() {
	defer c.compact()
	for {
		switch {
		case c.preface > 0:
			n := min(c.preface, len(c.in))
			at := len(h2Preface) - c.preface
			if string(c.in[:n]) != h2Preface[at:at+n] {
				c.off = true // not HTTP/2: the server says so
			}
			c.emit(n)
			c.preface -= n
			if c.preface > 0 {
				return
			}
			continue
		case c.off:
			c.emit(len(c.in))
			return
		case c.skip > 0:
			n := min(c.skip, len(c.in))
			c.emit(n)
			c.skip -= n
			if c.skip > 0 {
				return
			}
			continue
		}
		if len(c.in) < h2HeaderLen {
			return
		}
		length := int(c.in[0])<<16 | int(c.in[1])<<8 | int(c.in[2])
		typ, flags := c.in[3], c.in[4]
		stream := (uint32(c.in[5])<<24 | uint32(c.in[6])<<16 | uint32(c.in[7])<<8 | uint32(c.in[8])) & (1<<31 - 1)
		if c.inBlock && (typ != h2FrameContinuation || stream != c.stream) {
			c.stop() // a connection error the server reports
			continue
		}
		if typ != h2FrameHeaders && typ != h2FrameContinuation && typ != h2FrameSettings {
			c.emit(h2HeaderLen)
			c.skip = length
			continue
		}
		if length > c.maxFrame {
			c.stop() // FRAME_SIZE_ERROR, from the server
			continue
		}
		if len(c.in) < h2HeaderLen+length {
			return
		}
		frame := c.in[:h2HeaderLen+length]
		payload := frame[h2HeaderLen:]
		switch typ {
		case h2FrameSettings:
			if flags&h2FlagAck == 0 && stream == 0 && length%6 == 0 && length <= 600 {
				c.out = appendSettings(c.out, frame)
			} else {
				c.out = append(c.out, frame...)
			}
			c.in = c.in[len(frame):]
		case h2FrameHeaders:
			start, end := 0, length
			if flags&h2FlagPadded != 0 {
				if length < 1 {
					c.stop()
					continue
				}
				start = 1
				end -= int(payload[0])
			}
			if flags&h2FlagPriority != 0 {
				start += 5
			}
			if stream == 0 || start > end {
				c.stop()
				continue
			}
			c.inBlock, c.stream, c.endStream = true, stream, flags&h2FlagEndStream != 0
			c.held = append(c.held[:0], frame...)
			c.block = append(c.block[:0], payload[start:end]...)
			c.in = c.in[len(frame):]
			if flags&h2FlagEndHeaders != 0 {
				c.endBlock()
			}
		case h2FrameContinuation:
			if !c.inBlock || len(c.block)+length > h2MaxBlock {
				c.stop()
				continue
			}
			c.held = append(c.held, frame...)
			c.block = append(c.block, payload...)
			c.in = c.in[len(frame):]
			if flags&h2FlagEndHeaders != 0 {
				c.endBlock()
			}
		}
	}
}

// emit passes n bytes of in as they are.
func (c *h2Conn) emit(n int) {
	c.out = append(c.out, c.in[:n]...)
	c.in = c.in[n:]
}

// compact moves the unchecked bytes to the start of buf, and lets a
// buffer grown for a large frame go once it is empty.
func (c *h2Conn) compact() {
	if len(c.in) == 0 && len(c.buf) > 64<<10 {
		c.buf, c.in = nil, nil
		return
	}
	c.in = c.buf[:copy(c.buf, c.in)]
}

// stop ends the check: the held frames and everything after go through as
// received, and the server deals with them.
func (c *h2Conn) stop() {
	c.flushHeld()
	c.off = true
}

func (c *h2Conn) flushHeld() {
	if c.inBlock {
		c.out = append(c.out, c.held...)
		c.inBlock = false
	}
	c.held, c.block = c.held[:0], c.block[:0]
}

// endBlock decodes the complete header block and passes it on, with an
// invalid field appended when it is malformed.
func (c *h2Conn) endBlock() {
	c.malformed = false
	_, err := c.dec.Write(c.block)
	if err == nil {
		err = c.dec.Close()
	}
	if err != nil {
		c.stop() // COMPRESSION_ERROR, from the server
		return
	}
	c.inBlock = false
	if !c.malformed {
		c.out = append(c.out, c.held...)
		c.held, c.block = c.held[:0], c.block[:0]
		return
	}
	block := append(c.block, invalidField...)
	typ := byte(h2FrameHeaders)
	flags := byte(0)
	if c.endStream {
		flags = h2FlagEndStream
	}
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), c.maxFrame)
		f := flags
		if n == len(block) {
			f |= h2FlagEndHeaders
		}
		c.out = append(c.out, byte(n>>16), byte(n>>8), byte(n), typ, f,
			byte(c.stream>>24), byte(c.stream>>16), byte(c.stream>>8), byte(c.stream))
		c.out = append(c.out, block[:n]...)
		block = block[n:]
		typ, flags = h2FrameContinuation, 0
	}
	c.held, c.block = c.held[:0], c.block[:0]
}

// checkField marks the block malformed when f is connection-specific
// (RFC 9113 section 8.2.2).
func (c *h2Conn) checkField(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		c.malformed = true
	case "te":
		if f.Value != "trailers" {
			c.malformed = true
		}
	}
}

// appendSettings appends the SETTINGS frame to dst without the earlier
// occurrences of a repeated setting, whose later value replaces them as
// processing in order would. An invalid value is kept, for the server to
// refuse.
func appendSettings(dst, frame []byte) []byte {
	payload := frame[h2HeaderLen:]
	n := len(payload) / 6
	keep := make([]bool, n) // at most 100 settings
	kept := 0
	for i := range n {
		id := uint16(payload[6*i])<<8 | uint16(payload[6*i+1])
		val := uint32(payload[6*i+2])<<24 | uint32(payload[6*i+3])<<16 | uint32(payload[6*i+4])<<8 | uint32(payload[6*i+5])
		keep[i] = true
		if (http2.Setting{ID: http2.SettingID(id), Val: val}).Valid() == nil {
			for j := i + 1; j < n; j++ {
				if uint16(payload[6*j])<<8|uint16(payload[6*j+1]) == id {
					keep[i] = false
					break
				}
			}
		}
		if keep[i] {
			kept++
		}
	}
	if kept == n {
		return append(dst, frame...)
	}
	l := 6 * kept
	dst = append(dst, byte(l>>16), byte(l>>8), byte(l))
	dst = append(dst, frame[3:h2HeaderLen]...)
	for i := range n {
		if keep[i] {
			dst = append(dst, payload[6*i:6*i+6]...)
		}
	}
	return dst
}

// h2cProtocols returns the protocols of a transport that speaks only
// cleartext HTTP/2 with prior knowledge (ReverseProxy.ServerH2C).
func h2cProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// H2CListener wraps the listener of a server configured with Cleartext and
// HTTP2Only so that a connection refused unanswered (one that did not open
// with the HTTP/2 preface) ends with a FIN rather than a reset: its Close,
// when nothing was written, shuts the write side down and discards what
// the client still sends, for up to 250 ms and 64 KiB, before closing, as
// net/http does for HTTP/1.1 errors. Connections that wrote anything
// (every HTTP/2 connection: the server's SETTINGS come first) close at
// once.
func H2CListener(ln net.Listener) net.Listener { return &h2cListener{ln} }

type h2cListener struct{ net.Listener }

func (l *h2cListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a connection of H2CListener.
type lingerConn struct {
	net.Conn
	wrote atomic.Bool
}

func (c *lingerConn) Write(p []byte) (int, error) {
	if !c.wrote.Load() {
		c.wrote.Store(true)
	}
	return c.Conn.Write(p)
}

// NetConn returns the accepted connection.
func (c *lingerConn) NetConn() net.Conn { return c.Conn }

func (c *lingerConn) Close() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && !c.wrote.Load() {
		if cw.CloseWrite() == nil {
			c.Conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			io.CopyN(io.Discard, c.Conn, 64<<10)
		}
	}
	return c.Conn.Close()
}
