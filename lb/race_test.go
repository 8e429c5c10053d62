//go:build race

package lb_test

// raceEnabled reports whether the race detector is on: it limits a process
// to 8128 live goroutines, so the heaviest load tests run a lighter variant.
const raceEnabled = true
