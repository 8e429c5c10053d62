package testservers

import (
	"errors"
	"fmt"
	"testing"
)

// Optional starts a server with start (Redis, MariaDB, ...) for the whole of
// tb, like start(tb), except that a missing server does not skip tb: it
// returns nil and the reason, so that a test of several servers can skip
// only the cases that need the missing one. Under CI=true a missing server
// still fails tb, and so does a server that is present but does not start.
func Optional(tb testing.TB, start func(testing.TB) *Server) (s *Server, skipped string) {
	tb.Helper()
	c := &skipCatcher{TB: tb}
	defer func() {
		if r := recover(); r != nil {
			if r != errSkipped {
				panic(r)
			}
			s, skipped = nil, c.reason
		}
	}()
	return start(c), ""
}

// errSkipped unwinds start when it asks to skip.
var errSkipped = errors.New("testservers: skipped")

// skipCatcher passes everything to its TB but Skip, which it records and
// turns into a panic that Optional recovers.
type skipCatcher struct {
	testing.TB
	reason string
}

func (c *skipCatcher) Skip(args ...any) {
	c.reason = fmt.Sprint(args...)
	panic(errSkipped)
}

func (c *skipCatcher) Skipf(format string, args ...any) {
	c.reason = fmt.Sprintf(format, args...)
	panic(errSkipped)
}

func (c *skipCatcher) SkipNow() {
	c.reason = "skipped"
	panic(errSkipped)
}

func (c *skipCatcher) Skipped() bool { return c.reason != "" }
