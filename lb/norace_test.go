//go:build !race

package lb_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
