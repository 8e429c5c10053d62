package tlsmode_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// serveL4 serves b on a loopback TCPFrontend and returns its address.
func serveL4(t *testing.T, b lb.Backend) string {
	t.Helper()
	return serveL4On(t, listen(t), b)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveL4On serves b on ln until the test ends.
func serveL4On(t *testing.T, ln net.Listener, b lb.Backend) string {
	t.Helper()
	srv := &lb.TCPFrontend{Name: "test", Backend: b, HandshakeTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// serveHTTP serves h over TLS with cfg on loopback and returns the address.
func serveHTTP(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	return serveHTTPOn(t, listen(t), cfg, h)
}

// serveHTTPOn serves h on ln (over TLS with cfg, unless nil) until the
// test ends.
func serveHTTPOn(t *testing.T, ln net.Listener, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cfg != nil {
			srv.ServeTLS(ln, "", "")
		} else {
			srv.Serve(ln)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// tlsNameServer is a TLS server presenting cfg's certificate that writes
// name+"\n" then echoes, like testutil.NameServer over TLS.
type tlsNameServer struct {
	Addr  string
	greet string
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	cs    map[net.Conn]struct{}
	// states receives the state of each handshake.
	states chan tls.ConnectionState
}

func startTLSNameServer(t *testing.T, name string, cfg *tls.Config) *tlsNameServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsNameServer{Addr: ln.Addr().String(), greet: name, ln: ln, cs: map[net.Conn]struct{}{}, states: make(chan tls.ConnectionState, 64)}
	s.wg.Add(1)
	go s.serve(name, cfg)
	t.Cleanup(s.close)
	return s
}

func (s *tlsNameServer) serve(name string, cfg *tls.Config) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.cs[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handle(tls.Server(c, cfg), c, name)
	}
}

func (s *tlsNameServer) handle(tc *tls.Conn, raw net.Conn, name string) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.cs, raw)
		s.mu.Unlock()
		tc.Close()
	}()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return
	}
	select {
	case s.states <- tc.ConnectionState():
	default:
	}
	if _, err := io.WriteString(tc, name+"\n"); err != nil {
		return
	}
	io.Copy(tc, tc)
}

func (s *tlsNameServer) name() string { return s.greet }

func (s *tlsNameServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// greeting dials addr over TLS with cfg, reads the server's greeting line,
// checks the echo, and returns the line and the connection state.
func greeting(t *testing.T, addr string, cfg *tls.Config) (string, tls.ConnectionState, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := c.(*tls.Conn)
	r := bufio.NewReader(tc)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", tc.ConnectionState(), err
	}
	if _, err := io.WriteString(tc, "ping\n"); err != nil {
		return "", tc.ConnectionState(), err
	}
	echo, err := r.ReadString('\n')
	if err != nil {
		return "", tc.ConnectionState(), err
	}
	if echo != "ping\n" {
		return "", tc.ConnectionState(), errors.New("bad echo " + echo)
	}
	return strings.TrimSpace(line), tc.ConnectionState(), nil
}

// pool returns a Pool over addrs.
func pool(t *testing.T, addrs ...string) *lb.Pool {
	t.Helper()
	p := &lb.Pool{Name: "p", Retries: -1, ConnectTimeout: 5 * time.Second}
	var ss []lb.Server
	for _, a := range addrs {
		ss = append(ss, lb.Server{Addr: a})
	}
	if err := p.Update(ss); err != nil {
		t.Fatal(err)
	}
	return p
}
