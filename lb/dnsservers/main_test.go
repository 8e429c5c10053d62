package dnsservers_test

import (
	"log/slog"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) {
	// Failed resolutions are logged by design; keep test output to the
	// failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	testutil.LeakMain(m)
}
