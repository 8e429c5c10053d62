//go:build linux || darwin || freebsd

package upgrade_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lbkit/lbkit/lb/upgrade"
)

// Two generations of a server, here in one program: the second takes the
// first one's listener, and the first is told to drain once the second
// serves.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "upgrade")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "upgrade.sock")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The running process: nothing to take over, so it listens afresh.
	old := &upgrade.Upgrader{Path: path, Logger: quiet}
	defer old.Close()
	if err := old.Start(ctx); err != nil {
		panic(err)
	}
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := ln.Addr().String()
	if err := old.Ready(ctx); err != nil { // serves path
		panic(err)
	}

	// Its successor, started with the same path.
	next := &upgrade.Upgrader{Path: path, Logger: quiet}
	defer next.Close()
	if err := next.Start(ctx); err != nil {
		panic(err)
	}
	fmt.Println("inherited:", len(next.Inherited()), "socket")
	ln2, err := next.Listen(ctx, "tcp", addr) // the same socket
	if err != nil {
		panic(err)
	}
	defer ln2.Close()
	fmt.Println("same address:", ln2.Addr().String() == addr)
	if err := next.Ready(ctx); err != nil {
		panic(err)
	}

	// The running process is told: it stops accepting and drains.
	<-old.Upgraded()
	ln.Close() // its descriptor only: the socket stays open for next
	fmt.Println("old process: draining")
	// Output:
	// inherited: 1 socket
	// same address: true
	// old process: draining
}
