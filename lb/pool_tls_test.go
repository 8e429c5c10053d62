package lb_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// proxyTLSServer reads a line in clear (a PROXY header stand-in), then
// runs a TLS server handshake and echoes; it records the line and the SNI.
type proxyTLSServer struct {
	addr string
	mu   sync.Mutex
	seen []string // "header|sni"
}

func startProxyTLSServer(t *testing.T, cfg *tls.Config) *proxyTLSServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &proxyTLSServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				hdr, err := br.ReadString('\n')
				if err != nil {
					return
				}
				tc := tls.Server(&bufConn{Conn: c, r: br}, cfg)
				if err := tc.Handshake(); err != nil {
					return
				}
				s.mu.Lock()
				s.seen = append(s.seen, strings.TrimSpace(hdr)+"|"+tc.ConnectionState().ServerName)
				s.mu.Unlock()
				io.Copy(tc, tc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestPoolTLS checks L4 bridging in the Pool: the PROXY header goes first
// in clear, then TLS; the server name comes from TLSServerName, then
// TLS.ServerName, then the server's host; an unverified server is a
// connection failure.
func TestPoolTLS(t *testing.T) {
	testutil.CheckLeaks(t)
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	good := startProxyTLSServer(t, ca.ServerConfig(t, "127.0.0.1", "named.test", "client.test"))
	bad := startProxyTLSServer(t, other.ServerConfig(t, "127.0.0.1"))
	tests := []struct {
		name       string
		server     *proxyTLSServer
		serverName string
		fromClient bool
		wantSNI    string // "" with ok: an IP address was verified, no SNI sent
		ok         bool
	}{
		{"host of the address", good, "", false, "", true},
		{"configured name", good, "named.test", false, "named.test", true},
		{"client's SNI", good, "named.test", true, "client.test", true},
		{"untrusted server", bad, "", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &lb.Pool{
				Retries: -1,
				TLS:     &tls.Config{RootCAs: ca.Pool(), ServerName: tt.serverName},
				ProxyHeader: func(w io.Writer, info *lb.ConnInfo, s *lb.Server) error {
					_, err := io.WriteString(w, "HEADER "+s.Name+"\n")
					return err
				},
			}
			if tt.fromClient {
				p.TLSServerName = func(info *lb.ConnInfo, s *lb.Server) string { return info.SNI }
			}
			if err := p.Update([]lb.Server{{Name: "s", Addr: tt.server.addr}}); err != nil {
				t.Fatal(err)
			}
			addr := servePoolTLS(t, lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
				c.Info.SNI = "client.test"
				p.ServeConn(ctx, c)
			}))
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("ping\n"))
			got, err := bufio.NewReader(c).ReadString('\n')
			if !tt.ok {
				if err == nil {
					t.Fatalf("echo %q through an untrusted server", got)
				}
				if st := p.Status()[0]; st.Failures == 0 {
					t.Error("the failed handshake is not counted as a connection failure")
				}
				return
			}
			if got != "ping\n" {
				t.Fatalf("echo %q, %v", got, err)
			}
			tt.server.mu.Lock()
			seen := tt.server.seen[len(tt.server.seen)-1]
			tt.server.mu.Unlock()
			if want := "HEADER s|" + tt.wantSNI; seen != want {
				t.Errorf("server saw %q, want %q", seen, want)
			}
		})
	}
}

// servePoolTLS serves b on a loopback TCPFrontend until the test ends.
func servePoolTLS(t *testing.T, b lb.Backend) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &lb.TCPFrontend{Backend: b}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}
