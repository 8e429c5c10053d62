package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// RawServer is a loopback TCP server whose connections are served by a
// handler given the raw connection, for tests of HTTP clients against
// servers that answer in exact bytes. It counts the connections it
// accepted and closes them all on cleanup.
type RawServer struct {
	// Addr is the host:port the server listens on.
	Addr string

	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	open     map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// StartRaw starts a RawServer on 127.0.0.1 with a free port, serving each
// connection with handle (br reads c); the connection is closed when handle
// returns. The server is closed by tb.Cleanup.
func StartRaw(tb testing.TB, handle func(c net.Conn, br *bufio.Reader)) *RawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: listen: %v", err)
	}
	s := &RawServer{ln: ln, Addr: ln.Addr().String(), open: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.serve(handle)
	tb.Cleanup(s.Close)
	return s
}

func (s *RawServer) serve(handle func(c net.Conn, br *bufio.Reader)) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.open[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(c, handle)
	}
}

func (s *RawServer) serveConn(c net.Conn, handle func(c net.Conn, br *bufio.Reader)) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
	}()
	handle(c, bufio.NewReader(c))
}

// Close closes the listener and every open connection, and waits for the
// handlers to return. It may be called more than once.
func (s *RawServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Accepted returns the number of connections accepted so far.
func (s *RawServer) Accepted() int64 { return s.accepted.Load() }

// Open returns the number of connections whose handler has not returned.
func (s *RawServer) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// RawHTTP returns a RawServer handler that reads requests (bodies
// discarded) and lets respond answer each with raw bytes written to w (the
// connection); respond returns false to end the connection. n counts the
// requests of the connection from 0.
func RawHTTP(respond func(w io.Writer, r *http.Request, n int) bool) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for n := 0; ; n++ {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if !respond(c, r, n) {
				return
			}
		}
	}
}
