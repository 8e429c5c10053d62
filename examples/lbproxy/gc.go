package main

import (
	"flag"
	"os"
	"runtime/debug"
)

// gcFeature sets the garbage collector's pacing. A proxy's live heap is
// small (buffers and per-connection state, tens of MB) while it allocates
// per request, so the default GOGC=100 makes it collect very often; 400
// trades a few MB of peak memory for less CPU per request. An explicit GOGC
// in the environment wins.
type gcFeature struct{ percent int }

func init() { newFeatures = append(newFeatures, func() feature { return &gcFeature{percent: 400} }) }

func (g *gcFeature) register(fs *flag.FlagSet) {
	fs.IntVar(&g.percent, "gc-percent", g.percent, "garbage collection target percentage, as GOGC (0: the runtime's default); GOGC in the environment wins")
}

func (g *gcFeature) apply(*stack) error {
	if _, set := os.LookupEnv("GOGC"); !set && g.percent > 0 {
		debug.SetGCPercent(g.percent)
	}
	return nil
}
