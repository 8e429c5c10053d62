package tlsmode_test

import (
	"log/slog"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) {
	// Reloads and failed handshakes are logged by design; keep test output
	// to the failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	testutil.LeakMain(m)
}
