//go:build unix

package main

import (
	"os"
	"syscall"
)

// successorSignal makes lbproxy start its successor (upgrade.go).
var successorSignal os.Signal = syscall.SIGUSR2
