package http3_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/http3"
)

// countingCache counts the session tickets a client stores.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int64
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		c.puts.Add(1)
	}
}

// resumeIn0RTT sends a request on a first connection to get a session
// ticket, then a GET in 0-RTT on a second one, and returns its response.
func resumeIn0RTT(t *testing.T, e *env) *http.Response {
	t.Helper()
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	first := newClient(t, e.ca.Pool(), cache)
	if resp, _, err := do(first.Client, http.MethodGet, e.url("/"), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first GET: %v %v", resp, err)
	}
	testutil.Eventually(t, "a session ticket", func() bool { return cache.puts.Load() > 0 })
	first.tr.Close()

	// The second connection goes through a relay that delays the client's
	// second flight (its Finished), as a network with a real round-trip
	// time does, so the request sent in 0-RTT reaches the proxy before the
	// handshake is complete.
	relay := newRelay(t, e.addr, 200*time.Millisecond)
	second := newClient(t, e.ca.Pool(), cache)
	resp, body, err := do(second.Client, qhttp3.MethodGet0RTT, "https://"+relay+"/", nil)
	if err != nil {
		t.Fatalf("GET in 0-RTT: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "be1\n" {
		t.Fatalf("GET in 0-RTT: %s %q", resp.Status, body)
	}
	if !resp.TLS.DidResume {
		t.Fatal("the second connection did not resume the session")
	}
	return resp
}

func Test0RTTOffByDefault(t *testing.T) {
	e := newEnv(t, nil, nil, nil)
	resumeIn0RTT(t, e)
	if got := e.rec.lastSeen(); got.early {
		t.Error("a request arrived in 0-RTT though Allow0RTT is off")
	}
	be, _ := e.backend.LastRequest()
	if v := be.Header.Get("Early-Data"); v != "" {
		t.Errorf("the backend got Early-Data: %q, want none", v)
	}
}

func Test0RTTAllowedIsMarked(t *testing.T) {
	e := newEnv(t, nil, nil, func(s *http3.Server) { s.Allow0RTT = true })
	resumeIn0RTT(t, e)
	if got := e.rec.lastSeen(); !got.early {
		t.Error("Is0RTT is false for a request sent in 0-RTT with Allow0RTT")
	}
	be, _ := e.backend.LastRequest()
	if v := be.Header.Get("Early-Data"); v != "1" {
		t.Errorf("the backend got Early-Data: %q, want 1", v)
	}
}

// newRelay starts a UDP relay to server for one client, which delays the
// datagrams the client sends after the server first answered by delay, and
// returns its address.
func newRelay(t *testing.T, server string, delay time.Duration) string {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		client   net.Addr
		answered bool
		wg       sync.WaitGroup
	)
	wg.Go(func() { // server → client
		buf := make([]byte, 64<<10)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			answered = true
			to := client
			mu.Unlock()
			if to != nil {
				front.WriteTo(buf[:n], to)
			}
		}
	})
	wg.Go(func() { // client → server
		buf := make([]byte, 64<<10)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			late := answered
			mu.Unlock()
			p := append([]byte(nil), buf[:n]...)
			if !late {
				back.Write(p)
				continue
			}
			wg.Go(func() {
				time.Sleep(delay) // the simulated network's latency
				back.Write(p)
			})
		}
	})
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	return front.LocalAddr().String()
}
