//go:build race

package lb_test

import "testing"

// raceEnabled reports whether the race detector is on: it limits a process
// to 8128 live goroutines, so the heaviest load tests run a lighter variant.
const raceEnabled = true

// skipUnderRace skips a test that compares allocation counts: the race
// detector drops sync.Pool items at random, so the counts differ from run
// to run. scripts/test.sh runs these tests again without -race.
func skipUnderRace(t *testing.T) {
	t.Helper()
	t.Skip("allocation counts are compared without -race (scripts/test.sh)")
}
