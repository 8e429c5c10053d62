//go:build linux || darwin || freebsd

package upgrade

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbkit/lbkit/internal/testutil"
)

// upgradeInode returns the inode of the upgrade socket u serves.
func upgradeInode(u *Upgrader) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lnIno
}

// pathInode returns the inode of the file at path, 0 if there is none.
func pathInode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	return inode(fi)
}

// TestPredecessorGaveUp: a successor whose READY the predecessor no longer
// waits for (ReadyTimeout) must not serve: Ready fails with ErrPredecessor,
// Path stays the predecessor's, which serves the next successor, and the
// inherited unix socket's file outlives the successor's listener.
func TestPredecessorGaveUp(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	unixPath := filepath.Join(filepath.Dir(path), "app")
	handing := make(chan bool, 4)
	old := &Upgrader{Path: path, ReadyTimeout: 200 * time.Millisecond, OnHandover: func(on bool) { handing <- on }}
	defer old.Close()
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	oldUnix, err := old.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer oldUnix.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	slow := newUpgrader(t, path)
	if err := slow.Start(ctx); err != nil {
		t.Fatal(err)
	}
	slowUnix, err := slow.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	// The old process gives up: the connection ends.
	slow.pred.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.pred.Read(make([]byte, 1)); err == nil {
		t.Fatal("the old process sent something instead of giving up")
	}
	if err := slow.Ready(ctx); !errors.Is(err, ErrPredecessor) {
		t.Fatalf("Ready after the old process gave up = %v, want ErrPredecessor", err)
	}
	if got, want := pathInode(t, path), upgradeInode(old); got != want {
		t.Fatalf("Path is inode %d, the old process serves %d", got, want)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Fatalf("left behind %q", m)
	}
	if closed(old.Upgraded()) {
		t.Fatal("the old process drains for a successor that was never acknowledged")
	}
	if len(handing) != 2 || !<-handing || <-handing {
		t.Fatal("OnHandover was not called with true, then false")
	}
	// The successor stops: the unix socket's file stays the old one's.
	slowUnix.Close()
	slow.Close()
	wait := serveName(oldUnix, "old-unix")
	if got := greeting(t, "unix", unixPath); got != "old-unix" {
		t.Fatalf("unix socket after the successor stopped: %q", got)
	}
	oldUnix.Close()
	wait()
	// The next upgrade reaches the old process.
	next := newUpgrader(t, path)
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next.Inherited(); len(got) == 0 || got[0] != "tcp "+ln.Addr().String() {
		t.Fatalf("the next successor inherited %q, want the old process's sockets", got)
	}
}

// TestPathKeptUntilDrained: until the predecessor acknowledges READY, Path
// is its socket (a successor dying then leaves it reachable); afterwards,
// the successor's.
func TestPathKeptUntilDrained(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := newUpgrader(t, path)
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	oldIno := upgradeInode(old)
	if oldIno == 0 || pathInode(t, path) != oldIno {
		t.Fatalf("Path is inode %d, the first process serves %d", pathInode(t, path), oldIno)
	}
	successor := newUpgrader(t, path)
	if err := successor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var atBind uint64
	var early bool
	testHookBound = func() { atBind, early = pathInode(t, path), closed(old.Upgraded()) }
	defer func() { testHookBound = nil }()
	if err := successor.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if early {
		t.Fatal("the old process drained before READY")
	}
	if atBind != oldIno {
		t.Fatalf("before READY, Path was inode %d, not the old process's %d", atBind, oldIno)
	}
	if got, want := pathInode(t, path), upgradeInode(successor); got != want || got == oldIno {
		t.Fatalf("after DRAINING, Path is inode %d, the successor serves %d", got, want)
	}
}

// TestPredecessorGone: a predecessor that exits before READY leaves the
// successor serving, and serving Path for the next upgrade.
func TestPredecessorGone(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := newUpgrader(t, path)
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	successor := newUpgrader(t, path)
	if err := successor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	nl, err := successor.Listen(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	old.Close()
	ln.Close()
	if err := successor.Ready(ctx); err != nil {
		t.Fatalf("Ready once the old process is gone = %v", err)
	}
	next := newUpgrader(t, path)
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next.Inherited(); len(got) != 1 || got[0] != "tcp "+ln.Addr().String() {
		t.Fatalf("the next successor inherited %q", got)
	}
}

// waitSelect waits until a goroutine blocked in a select has fn among its
// callers.
func waitSelect(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	testutil.Eventually(t, "a goroutine waiting in "+fn, func() bool {
		n := runtime.Stack(buf, true)
		for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
			header, _, _ := bytes.Cut(g, []byte("\n"))
			if bytes.Contains(header, []byte("[select")) && bytes.Contains(g, []byte(fn+"(")) {
				return true
			}
		}
		return false
	})
}

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCloseEndsWaitingHandover: Close ends a handover waiting for another's
// to end (for up to half of Timeout): it does not go on to hand the
// sockets over once the other's slot is free.
func TestCloseEndsWaitingHandover(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	var logs lockedBuffer
	old := newUpgrader(t, path)
	old.Timeout = time.Minute
	old.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	first := newUpgrader(t, path)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	second := newUpgrader(t, path)
	second.Timeout = time.Minute
	started := make(chan error, 1)
	go func() { started <- second.Start(ctx) }()
	waitSelect(t, "upgrade.(*Upgrader).handover")
	done := make(chan struct{})
	go func() { old.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Close waits for a handover waiting for its turn")
	}
	if err := <-started; err == nil {
		t.Fatal("the waiting successor took sockets from a closed Upgrader")
	}
	if n := strings.Count(logs.String(), "handed the sockets over") + strings.Count(logs.String(), "handing the sockets over failed"); n != 1 {
		t.Fatalf("%d handovers after Close, want only the first's:\n%s", n, logs.String())
	}
}

// TestUnnameableSocket: a socket whose name cannot be written (a unix path
// with a space) is not handed over; the others are.
func TestUnnameableSocket(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	old := newUpgrader(t, path)
	spaced, err := old.Listen(ctx, "unix", filepath.Join(filepath.Dir(path), "a b"))
	if err != nil {
		t.Fatal(err)
	}
	defer spaced.Close()
	ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	u := newUpgrader(t, path)
	if err := u.Start(ctx); err != nil {
		t.Fatalf("Start with a socket named with a space: %v", err)
	}
	if got := u.Inherited(); len(got) != 1 || got[0] != "tcp "+ln.Addr().String() {
		t.Fatalf("inherited %q, want only tcp %s", got, ln.Addr())
	}
	// Received descriptors are close-on-exec, on every system.
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, in := range u.inherited {
		flags, err := unix.FcntlInt(in.file.Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("inherited %s: descriptor flags %#x, %v: not close-on-exec", in.name, flags, err)
		}
	}
}

// TestInheritedUnixFile: a successor that stops before Ready leaves the
// inherited unix socket's file to the predecessor; once it served, closing
// its listener removes the file, as for a socket of its own.
func TestInheritedUnixFile(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	unixPath := filepath.Join(filepath.Dir(path), "app")
	old := newUpgrader(t, path)
	oldUnix, err := old.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer oldUnix.Close()
	if err := old.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	failed := newUpgrader(t, path)
	if err := failed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := failed.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	failed.Close()
	if _, err := os.Lstat(unixPath); err != nil {
		t.Fatalf("a successor that stopped before Ready removed the old process's file: %v", err)
	}

	next := newUpgrader(t, path)
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err = next.Listen(ctx, "unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	oldUnix.Close() // the old process drains: its close keeps the file
	if _, err := os.Lstat(unixPath); err != nil {
		t.Fatalf("the old process's close removed the file: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(unixPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the successor's close left the file: %v", err)
	}
}

// TestHandedOverLeavesPath: a process that handed its sockets over never
// removes Path, which is its successor's: not when it stops before the
// successor renamed its socket onto Path (a removal then, racing with the
// rename, could take the successor's file and fail the next upgrade), nor
// after. Three upgrades in a row each reach the process before.
func TestHandedOverLeavesPath(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	path := sockPath(t)
	cur := newUpgrader(t, path)
	ln, err := cur.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if err := cur.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { testHookAcked = nil }()
	for i := range 3 {
		next := newUpgrader(t, path)
		if err := next.Start(ctx); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		if got := next.Inherited(); len(got) != 1 || got[0] != "tcp "+addr {
			t.Fatalf("upgrade %d inherited %q, want the previous process's socket", i+1, got)
		}
		nl, err := next.Listen(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nl.Close()
		old, oldIno := cur, upgradeInode(cur)
		var atAck uint64
		var drained bool
		// The old process stops as soon as it is told to drain, before
		// the successor renames its socket onto Path.
		testHookAcked = func() {
			drained = closed(old.Upgraded())
			old.Close()
			atAck = pathInode(t, path)
		}
		if err := next.Ready(ctx); err != nil {
			t.Fatalf("upgrade %d: Ready: %v", i+1, err)
		}
		testHookAcked = nil
		if !drained {
			t.Fatalf("upgrade %d: the old process was not told to drain", i+1)
		}
		if atAck != oldIno {
			t.Fatalf("upgrade %d: the old process's Close changed Path (inode %d, was %d)", i+1, atAck, oldIno)
		}
		if got, want := pathInode(t, path), upgradeInode(next); got != want || got == 0 {
			t.Fatalf("upgrade %d: Path is inode %d, the successor serves %d", i+1, got, want)
		}
		old.Close()
		if got := pathInode(t, path); got != upgradeInode(next) {
			t.Fatalf("upgrade %d: the old process's second Close changed Path to inode %d", i+1, got)
		}
		cur = next
	}
	cur.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the last process, which handed nothing over, left Path: %v", err)
	}
}

// TestCloseAfterFailedHandover: a successor that stopped without READY
// never takes Path, and the old process's Close removes it; one abandoned
// at ReadyTimeout may still serve alone once the old process is gone, so
// the old process's Close leaves Path to it.
func TestCloseAfterFailedHandover(t *testing.T) {
	for _, stopped := range []bool{true, false} {
		name := map[bool]string{true: "stopped", false: "abandoned"}[stopped]
		t.Run(name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ctx := context.Background()
			path := sockPath(t)
			handing := make(chan bool, 4)
			old := &Upgrader{Path: path, Timeout: 5 * time.Second, ReadyTimeout: 200 * time.Millisecond,
				OnHandover: func(on bool) { handing <- on }}
			defer old.Close()
			if stopped {
				old.ReadyTimeout = time.Minute
			}
			ln, err := old.Listen(ctx, "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if err := old.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			successor := newUpgrader(t, path)
			if err := successor.Start(ctx); err != nil {
				t.Fatal(err)
			}
			nl, err := successor.Listen(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nl.Close()
			if stopped {
				successor.Close()
			}
			for _, want := range []bool{true, false} {
				select {
				case on := <-handing:
					if on != want {
						t.Fatalf("OnHandover(%v), want %v", on, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("no OnHandover(%v)", want)
				}
			}
			oldIno := upgradeInode(old)
			old.Close()
			ln.Close()
			if stopped {
				if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("Close left Path, though its successor stopped: %v", err)
				}
				return
			}
			if got := pathInode(t, path); got != oldIno {
				t.Fatalf("Close changed Path (inode %d, was %d) though its successor may take it", got, oldIno)
			}
			if err := successor.Ready(ctx); err != nil {
				t.Fatalf("Ready once the old process is gone = %v", err)
			}
			if got, want := pathInode(t, path), upgradeInode(successor); got != want || got == oldIno {
				t.Fatalf("Path is inode %d, the successor serves %d", got, want)
			}
		})
	}
}
