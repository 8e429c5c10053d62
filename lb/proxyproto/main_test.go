package proxyproto_test

import (
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Rejected connections are logged by design; keep test output to the
	// failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}
