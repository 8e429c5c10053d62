package tlsmode_test

import (
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.LeakMain(m) }
