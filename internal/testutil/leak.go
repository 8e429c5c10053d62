package testutil

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leakTimeout is how long a leak check waits for goroutines to end.
const leakTimeout = 3 * time.Second

// CheckLeaks snapshots the running goroutines and registers a tb.Cleanup
// that fails the test (tb.Errorf, with their stacks) if goroutines started
// since then are still running after a grace period of about 3 seconds.
//
// Call it first in a test: cleanups run last-registered first, so servers,
// clients and connections closed by later cleanups are gone when the check
// runs. Goroutines that existed at the snapshot, those of the testing
// package and of the runtime are ignored; an idle keep-alive connection of an
// http.Client created during the test is a leak (close it with
// CloseIdleConnections in a cleanup). The check cannot tell apart the
// goroutines of tests running in parallel: don't use it in tests that call
// t.Parallel or run next to parallel tests.
func CheckLeaks(tb testing.TB) {
	tb.Helper()
	checkLeaks(tb, leakTimeout)
}

func checkLeaks(tb testing.TB, timeout time.Duration) {
	before := make(map[uint64]bool)
	for _, g := range goroutines() {
		before[g.id] = true
	}
	tb.Cleanup(func() {
		leaked := waitLeaks(timeout, func(g goroutine) bool { return before[g.id] })
		if len(leaked) > 0 {
			tb.Errorf("testutil: %d leaked goroutine(s):\n\n%s", len(leaked), formatStacks(leaked))
		}
	})
}

// LeakMain runs the tests of m and then checks that no goroutine other than
// those of the runtime and of the testing package is still running, waiting
// for about 3 seconds for them to end. It exits with m.Run's status, or 1 if
// goroutines leaked. Use it as the body of TestMain:
//
//	func TestMain(m *testing.M) { testutil.LeakMain(m) }
func LeakMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		self := currentID()
		leaked := waitLeaks(leakTimeout, func(g goroutine) bool { return g.id == self })
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "testutil: %d goroutine(s) still running after the tests:\n\n%s", len(leaked), formatStacks(leaked))
			code = 1
		}
	}
	os.Exit(code)
}

// waitLeaks polls the goroutines until none but the expected ones remain or
// timeout passes, and returns the unexpected ones still running.
func waitLeaks(timeout time.Duration, expected func(goroutine) bool) []goroutine {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	self := currentID()
	for {
		var leaked []goroutine
		for _, g := range goroutines() {
			if g.id != self && !expected(g) && !ignored(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// goroutine is one goroutine of a runtime.Stack dump.
type goroutine struct {
	id    uint64
	top   string // the function at the top of the stack
	stack string // the whole text, header included
}

// ignoredFuncs are functions whose presence in a stack marks a goroutine of
// the runtime or of the testing package, or an idle worker of
// internal/gopool (which holds no task, and retires by itself).
var ignoredFuncs = []string{
	"testing.tRunner(",
	"testing.(*T).Run(",
	"testing.(*M).",
	"testing.runTests(",
	"testing.runFuzzing(",
	"testing.runFuzzTests(",
	"testing.(*F).Fuzz(",
	"testing.runExamples(",
	"testing/internal/testdeps.",
	"os/signal.signal_recv(",
	"os/signal.loop(",
	"runtime.ensureSigM(",
	"runtime.runfinq(",
	"runtime.runCleanups(",
	"runtime.ReadTrace(",
	"runtime/trace.",
	"runtime/pprof.",
	"internal/gopool.(*worker).park(",
}

func ignored(g goroutine) bool {
	for _, f := range ignoredFuncs {
		if strings.Contains(g.stack, f) {
			return true
		}
	}
	return false
}

// goroutines returns the goroutines running now, by parsing
// runtime.Stack(all=true).
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return parseStacks(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

func currentID() uint64 {
	var buf [128]byte
	n := runtime.Stack(buf[:], false)
	gs := parseStacks(buf[:n])
	if len(gs) == 0 {
		return 0
	}
	return gs[0].id
}

// parseStacks splits a runtime.Stack dump into goroutines. Each starts with
// a "goroutine N [state]:" line followed by its frames; blank lines separate
// them.
func parseStacks(dump []byte) []goroutine {
	var out []goroutine
	for block := range bytes.SplitSeq(dump, []byte("\n\n")) {
		text := strings.TrimSpace(string(block))
		header, rest, _ := strings.Cut(text, "\n")
		idText, ok := strings.CutPrefix(header, "goroutine ")
		if !ok {
			continue
		}
		idText, _, _ = strings.Cut(idText, " ")
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil {
			continue
		}
		top, _, _ := strings.Cut(rest, "\n")
		if i := strings.LastIndexByte(top, '('); i > 0 {
			top = top[:i]
		}
		out = append(out, goroutine{id: id, top: top, stack: text})
	}
	return out
}

func formatStacks(gs []goroutine) string {
	gs = slices.Clone(gs)
	slices.SortFunc(gs, func(a, b goroutine) int { return strings.Compare(a.top, b.top) })
	var sb strings.Builder
	for _, g := range gs {
		sb.WriteString(g.stack)
		sb.WriteString("\n\n")
	}
	return sb.String()
}
