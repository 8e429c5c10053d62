package main

import (
	"os"
	"runtime/debug"
)

// setGCPercent sets the garbage collector's pacing (-gc-percent). A proxy's
// live heap is small (buffers and per-connection state, tens of MB) while
// it allocates per request, so the default GOGC=100 makes it collect very
// often; 400 trades a few MB of peak memory for less CPU per request. An
// explicit GOGC in the environment wins, and 0 keeps the runtime's default.
func setGCPercent(percent int) {
	if _, set := os.LookupEnv("GOGC"); !set && percent > 0 {
		debug.SetGCPercent(percent)
	}
}
