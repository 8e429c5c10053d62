package lb_test

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// State changes and recovered panics are logged by design; keep test
	// output to the failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
