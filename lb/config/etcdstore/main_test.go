package etcdstore

import (
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestMain checks that the stores' goroutines (watches, probes, gRPC
// connections) are gone once the tests have closed them.
func TestMain(m *testing.M) { testutil.LeakMain(m) }
