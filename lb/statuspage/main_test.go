package statuspage_test

import (
	"log/slog"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to the failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	testutil.LeakMain(m)
}
