package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeExecutable writes a shell script named name into dir.
func writeExecutable(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLookTool checks that the pinned tools come from LBKIT_TOOLS_BIN or
// the tools module, and never from a program of the same name on PATH.
func TestLookTool(t *testing.T) {
	onPath := t.TempDir()
	t.Setenv("PATH", onPath+string(os.PathListSeparator)+os.Getenv("PATH"))
	writeExecutable(t, onPath, "pebble")
	writeExecutable(t, onPath, "lbkit-only-on-path")

	t.Run("from LBKIT_TOOLS_BIN", func(t *testing.T) {
		bin := t.TempDir()
		want := writeExecutable(t, bin, "pebble")
		t.Setenv(toolsBinEnv, bin)
		if got := LookTool(t, "pebble"); got != want {
			t.Fatalf("LookTool = %q, want %q", got, want)
		}
	})

	t.Run("not on PATH", func(t *testing.T) {
		t.Setenv(toolsBinEnv, t.TempDir())
		rec := &recordTB{TB: t}
		if got := LookTool(rec, "lbkit-only-on-path"); got != "" || rec.ended == "" {
			t.Fatalf("LookTool = %q, ended with %q; want the test ended, not the program on PATH", got, rec.ended)
		}
	})

	t.Run("built from the tools module", func(t *testing.T) {
		t.Setenv(toolsBinEnv, "")
		got, err := lookTool("pebble")
		if err != nil {
			if InCI() {
				t.Fatal(err)
			}
			t.Skip(err) // no network for the module download, for instance
		}
		if filepath.Dir(got) == onPath {
			t.Fatalf("LookTool = %q, the program on PATH", got)
		}
	})
}

// recordTB records how a test would have ended (Skipf or Fatalf) instead
// of ending it.
type recordTB struct {
	testing.TB
	ended string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skipf(f string, a ...any)  { r.ended = "skip: " + fmt.Sprintf(f, a...) }
func (r *recordTB) Fatalf(f string, a ...any) { r.ended = "fatal: " + fmt.Sprintf(f, a...) }
