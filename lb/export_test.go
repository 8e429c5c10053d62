package lb

import "time"

// ClientIPForTest exposes clientIP to the external tests.
var ClientIPForTest = clientIP

// UnwrapConnForTest exposes unwrapConn, which finds the socket under a
// client connection for the L4 copy.
var UnwrapConnForTest = unwrapConn

// SetClockForTest makes l read the time from now, for tests of rates;
// call it before l's first use.
func (l *Limits) SetClockForTest(now func() time.Time) { l.now = now }
