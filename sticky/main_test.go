package sticky_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serveHTTP serves h on a loopback http.Server through lb.Serve until the
// test ends, and returns its address.
func serveHTTP(t *testing.T, srv *http.Server, ln net.Listener, also ...lb.Shutdowner) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, ln, time.Second, also...) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	})
	return ln.Addr().String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	return ln
}

// poolOf returns a pool of the named servers (at addresses that are never
// dialled).
func poolOf(t testing.TB, names ...string) *lb.Pool {
	t.Helper()
	p := &lb.Pool{Name: "test"}
	servers := make([]lb.Server, len(names))
	for i, n := range names {
		servers[i] = lb.Server{Name: n, Addr: "192.0.2.1:" + strconv.Itoa(1000+i)}
	}
	must(t, p.Update(servers))
	return p
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func netipFrom(b byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, b}), 1)
}
