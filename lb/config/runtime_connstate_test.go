package config_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
)

// connStates records the states RuntimeOptions.ConnState reports, by
// connection: an HTTP/2 connection reported through a wrapper is filed
// under the connection its NetConn method returns, when that one was
// reported before.
type connStates struct {
	mu     sync.Mutex
	states map[net.Conn][]http.ConnState
}

func (s *connStates) hook(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = make(map[net.Conn][]http.ConnState)
	}
	for k := c; ; {
		if _, ok := s.states[k]; ok {
			c = k
			break
		}
		u, ok := k.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		k = u.NetConn()
	}
	s.states[c] = append(s.states[c], st)
}

// of returns the states of the connection whose remote address is client.
func (s *connStates) of(client net.Addr) []http.ConnState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var got []http.ConnState
	for c, st := range s.states {
		if c.RemoteAddr().String() == client.String() {
			got = append(got, st...)
		}
	}
	return got
}

// TestRuntimeConnState: RuntimeOptions.ConnState sees every state of an
// HTTP/1.1 connection to a frontend (new, active, idle, closed) and of an
// HTTP/2 one over TLS, whose later states come through a wrapper of the
// connection StateNew reported; the runtime's own hook still counts the
// connections in the frontend's statistics.
func TestRuntimeConnState(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	web := httpServers(t, "web", nil, "127.0.0.2")
	pHTTP, pHTTPS := freePort(t), freePort(t)
	doc := fmt.Sprintf(`{
	  "lb": {"id": "lb-1"},
	  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": %s}],
	  "frontends": [
	    {"id": "f-http", "name": "plain", "inbound_port": %d, "backend_id": "web"},
	    {"id": "f-https", "name": "secure", "inbound_port": %d, "backend_id": "web", "certificate_ids": ["one"]}
	  ],
	  "certificates": [{"id": "one", "certificate_chain": %s}]
	}`, web.port, web.pool(), pHTTP, pHTTPS, jsonString(chainPEM(t, ca.Leaf(t, "one.test"))))
	var seen connStates
	rt := newRuntime(t, config.RuntimeOptions{ConnState: seen.hook})
	apply(t, rt, doc)
	conns := func(frontend string) int64 { return rt.FrontendSources()[frontend].Stats().ConnCur }
	want := []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateClosed}

	t.Run("HTTP/1.1", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(pHTTP), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "web 127.0.0.2" {
			t.Fatalf("through the frontend: %s %q", resp.Status, body)
		}
		testutil.Eventually(t, "new, active, idle", func() bool { return slices.Equal(seen.of(c.LocalAddr()), want[:3]) })
		if n := conns("plain"); n != 1 {
			t.Fatalf("the frontend counts %d open connections, want 1", n)
		}
		c.Close()
		testutil.Eventually(t, "closed", func() bool { return slices.Equal(seen.of(c.LocalAddr()), want) })
		testutil.Eventually(t, "the frontend's count back to 0", func() bool { return conns("plain") == 0 })
	})

	t.Run("HTTP/2", func(t *testing.T) {
		tr := &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "one.test"}}
		var local net.Addr
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			if err == nil {
				local = c.LocalAddr()
			}
			return c, err
		}
		client := newClient(t, tr)
		resp, err := client.Get("https://127.0.0.1:" + strconv.Itoa(pHTTPS) + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			t.Fatalf("through the frontend: %s %s, want HTTP/2 200", resp.Proto, resp.Status)
		}
		testutil.Eventually(t, "new, active, idle", func() bool {
			got := seen.of(local)
			return len(got) >= 3 && got[0] == http.StateNew && got[len(got)-1] == http.StateIdle
		})
		if n := conns("secure"); n != 1 {
			t.Fatalf("the frontend counts %d open connections, want 1", n)
		}
		tr.CloseIdleConnections()
		testutil.Eventually(t, "closed", func() bool {
			got := seen.of(local)
			return got[len(got)-1] == http.StateClosed && !slices.Contains(got[1:], http.StateNew)
		})
		testutil.Eventually(t, "the frontend's count back to 0", func() bool { return conns("secure") == 0 })
	})
}
