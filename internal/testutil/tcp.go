package testutil

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TCPServer is a raw TCP server on 127.0.0.1 started by EchoServer or
// NameServer.
type TCPServer struct {
	// Addr is the host:port the server listens on.
	Addr string

	ln       net.Listener
	handle   func(net.Conn)
	accepted atomic.Int64
	active   atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// EchoServer starts a TCP server that writes back every byte it reads. When
// a client half-closes its side, the server finishes echoing, half-closes
// its own side (CloseWrite) and closes the connection. The server is closed
// by tb.Cleanup.
func EchoServer(tb testing.TB) *TCPServer {
	tb.Helper()
	return startTCP(tb, echo)
}

// NameServer starts a TCP server that writes name+"\n" to every accepted
// connection, then behaves like EchoServer.
func NameServer(tb testing.TB, name string) *TCPServer {
	tb.Helper()
	greeting := []byte(name + "\n")
	return startTCP(tb, func(c net.Conn) {
		if _, err := c.Write(greeting); err != nil {
			return
		}
		echo(c)
	})
}

func startTCP(tb testing.TB, handle func(net.Conn)) *TCPServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: listen: %v", err)
	}
	s := &TCPServer{Addr: ln.Addr().String(), ln: ln, handle: handle, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve()
	tb.Cleanup(s.Close)
	return s
}

func (s *TCPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.accepted.Add(1)
		s.active.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				s.active.Add(-1)
			}()
			s.handle(c)
		}()
	}
}

// Conns returns the number of connections accepted so far.
func (s *TCPServer) Conns() int64 { return s.accepted.Load() }

// Active returns the number of connections currently open.
func (s *TCPServer) Active() int64 { return s.active.Load() }

// Close stops the listener, closes every open connection and waits for the
// server's goroutines to end. It may be called more than once.
func (s *TCPServer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo copies c to itself, propagating a half-close: after the client's EOF
// and the last byte echoed, it shuts down the write side.
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// ClosedAddr returns a 127.0.0.1 address where nothing listens: it listens
// on a free port and closes the listener at once. Connections to it are
// refused (unless another test happens to take the port meanwhile).
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	return closedAddr(tb)
}

// TCPPair returns the two ends of a new TCP connection on 127.0.0.1: the
// dialed one and the accepted one. Both are closed by a cleanup.
func TCPPair(tb testing.TB) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type acc struct {
		c   net.Conn
		err error
	}
	ch := make(chan acc, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acc{c, err}
	}()
	d, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		d.Close()
		tb.Fatal(a.err)
	}
	tb.Cleanup(func() { d.Close(); a.c.Close() })
	return d.(*net.TCPConn), a.c.(*net.TCPConn)
}
