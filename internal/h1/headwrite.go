package h1

import (
	"io"
	"net"
	"os"
	"syscall"
)

// A request without a body to a server over TCP is written by the first
// read of its response, inside the socket's RawConn.Read callback:
// the read starts by clearing the socket's readiness, the callback writes
// the request and returns without reading, and the wait that follows ends
// with the edge of the response's first bytes, which cannot come before
// the request. A read right after the write, as conn.Write then conn.Read
// make, finds nothing nearly every time (the server has not answered yet)
// and costs a system call per request.
//
// Bytes that came before the request (a server's early close, or a 408
// on an idle connection) came before the readiness was cleared, and are
// read with the next edge: the response, or the close or reset that a
// closed connection answers the request with.
//
// Over TLS the same is done one layer down, with the request's TLS
// records: the TLS client writes to a tlsSocket, which keeps them while
// the head is deferred, and its next read of the socket (the TLS client's
// read of the response's first record) writes them.

// headWriter is the writer under a plain TCP serverConn's bw: it writes
// to the socket, or keeps the bytes in pc.head while pc.deferHead is set
// (bw's one flush of the whole head).
type headWriter struct{ pc *serverConn }

func (w headWriter) Write(p []byte) (int, error) {
	pc := w.pc
	if pc.deferHead {
		pc.head = append(pc.head[:0], p...)
		return len(p), nil
	}
	pc.wrote = true
	return pc.tcp.Write(p)
}

// tlsSocket is the TCP connection under a TLS serverConn: the TLS client's
// writes go to the socket, or are kept in pc.head while pc.deferHead is
// set (the records of one request head, however many), and its reads
// write a kept head first (writeHeadThenRead).
type tlsSocket struct {
	*net.TCPConn
	pc *serverConn
}

func (s *tlsSocket) Write(p []byte) (int, error) {
	pc := s.pc
	if pc.deferHead {
		pc.head = append(pc.head, p...)
		return len(p), nil
	}
	pc.wrote = true
	return s.TCPConn.Write(p)
}

func (s *tlsSocket) Read(p []byte) (int, error) {
	if len(s.pc.head) > 0 {
		return s.pc.writeHeadThenRead(p)
	}
	return s.TCPConn.Read(p)
}

// NetConn returns the TCP connection, for code that looks under wrappers.
func (s *tlsSocket) NetConn() net.Conn { return s.TCPConn }

// headRead is the state of one writeHeadThenRead, kept in its serverConn
// with the callback bound once, so that the call allocates nothing.
type headRead struct {
	fn         func(fd uintptr) bool // pc.headCycle
	p          []byte
	n, sent    int
	werr, rerr error
	waited     bool
	full       bool // the socket took only part of the head
}

// writeHeadThenRead writes pc.head and reads the response's first bytes
// into p, as described above. A head the socket does not take at once
// (its send buffer is full) is finished with a blocking write, and the
// read is then a plain one.
func (pc *serverConn) writeHeadThenRead(p []byte) (int, error) {
	hr := &pc.hr
	if hr.fn == nil {
		hr.fn = pc.headCycle
	}
	hr.p, hr.n, hr.sent, hr.werr, hr.rerr, hr.waited, hr.full = p, 0, 0, nil, nil, false, false
	err := pc.raw.Read(hr.fn)
	head := pc.head
	pc.head = pc.head[:0]
	if cap(head) > 4<<10 {
		pc.head = nil // an idle connection keeps no large head's buffer
	}
	hr.p = nil
	switch {
	case err != nil: // the deadline, or the connection closed
		return 0, pc.opError("read", err)
	case hr.werr != nil:
		return 0, pc.opError("write", hr.werr)
	case hr.full:
		if _, err := pc.tcp.Write(head[hr.sent:]); err != nil {
			return 0, err
		}
		return pc.tcp.Read(p)
	}
	if hr.rerr != nil && hr.rerr != io.EOF {
		return hr.n, pc.opError("read", hr.rerr)
	}
	return hr.n, hr.rerr
}

// headCycle is writeHeadThenRead's RawConn.Read callback: it writes the
// head, returns once to wait for the response, then reads.
func (pc *serverConn) headCycle(fd uintptr) bool {
	hr := &pc.hr
	for hr.sent < len(pc.head) {
		m, err := syscall.Write(int(fd), pc.head[hr.sent:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			hr.full = true
			return true
		case err != nil:
			hr.werr = os.NewSyscallError("write", err)
			return true
		}
		hr.sent += m
	}
	if !hr.waited {
		hr.waited = true
		return false // wait for the response's edge
	}
	for {
		m, err := syscall.Read(int(fd), hr.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			hr.rerr = os.NewSyscallError("read", err)
		case m == 0:
			hr.rerr = io.EOF
		}
		hr.n = max(m, 0)
		return true
	}
}

// opError wraps err as net's connections do.
func (pc *serverConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: pc.tcp.LocalAddr(), Addr: pc.tcp.RemoteAddr(), Err: err}
}
