package lb

import (
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// CheckEventLoops reports an L4 copy event loop that has had work pending
// for longer than stall without serving it: the sessions on a stuck loop no
// longer move. On Linux the bytes of plain TCP sessions (TCPFrontend to
// Pool) are copied on event loops shared by the whole process; elsewhere,
// and when none runs, CheckEventLoops returns nil.
//
// The pending work is the check's own: each call wakes the running loops
// (one system call each) and the next call looks whether they answered.
// Call it periodically, every second or few, as a health check does; a loop
// that stops is reported by the first call made more than stall after the
// first wake it missed. It is safe for concurrent use.
func CheckEventLoops(stall time.Duration) error {
	return pipe.Stalled(stall)
}
