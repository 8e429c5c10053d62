//go:build !race

package lb_test

import "testing"

// raceEnabled reports whether the race detector is on.
const raceEnabled = false

// skipUnderRace skips a test that compares allocation counts when the race
// detector is on; here it is off, and the test runs.
func skipUnderRace(*testing.T) {}
