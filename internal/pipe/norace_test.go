//go:build !race

package pipe_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
