package lb

import (
	"io"
	"log"
)

// discardLog silences httputil's own logger: lbkit logs through slog.
var discardLog = log.New(io.Discard, "", 0)
