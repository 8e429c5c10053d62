//go:build !unix

package main

import "os"

// successorSignal makes lbproxy start its successor (upgrade.go): none
// where there is no SIGUSR2.
var successorSignal os.Signal
