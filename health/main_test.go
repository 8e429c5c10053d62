package health_test

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// State changes are logged by design; keep test output to failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
