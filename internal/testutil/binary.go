package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// external server is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// LookBinary finds the executable name of an external server or tool that a
// test needs (haproxy, mariadbd, redis-server, ...), in PATH, in the sbin
// directories, or in extra directories given as glob patterns
// ("/usr/lib/postgresql/*/bin"). When it is missing the test is skipped,
// or fails under CI; pkg names the Debian package that provides it, which
// scripts/test.sh installs. Go programs whose version matters are found
// with [LookTool] instead.
func LookBinary(tb testing.TB, name, pkg string, extraDirs ...string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin"}
	for _, pattern := range extraDirs {
		matches, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(sort.StringSlice(matches))) // newest version first
		dirs = append(dirs, matches...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p
		}
	}
	if InCI() {
		tb.Fatalf("%s not found (Debian package %s): scripts/test.sh installs it", name, pkg)
	}
	tb.Skipf("%s not found (Debian package %s); run scripts/test.sh to install it", name, pkg)
	return ""
}

// toolsBinEnv names the environment variable that holds the directory of
// the Go tools pinned in scripts/tools/go.mod, where scripts/test.sh builds
// them.
const toolsBinEnv = "LBKIT_TOOLS_BIN"

// LookTool returns the path of name, a Go program the tests run (pebble,
// pebble-challtestsrv) at the version pinned by a tool directive in
// scripts/tools/go.mod. It takes name from the directory in
// $LBKIT_TOOLS_BIN when that is set (scripts/test.sh sets it), or else
// has "go tool -n" build it in scripts/tools. It never takes a program of
// the same name from PATH, whose version may differ and whose flags may
// not be those the tests pass. When the tool cannot be had the test is
// skipped, or fails under CI.
func LookTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := lookTool(name)
	if err == nil {
		return p
	}
	if InCI() {
		tb.Fatalf("testutil: %v", err)
	}
	tb.Skipf("testutil: %v; run scripts/test.sh to build it", err)
	return ""
}

func lookTool(name string) (string, error) {
	if dir := os.Getenv(toolsBinEnv); dir != "" {
		p := filepath.Join(dir, name)
		if !isExecutable(p) {
			return "", fmt.Errorf("tool %s not found in %s=%s", name, toolsBinEnv, dir)
		}
		return p, nil
	}
	dir, err := toolsModule()
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", name, err)
	}
	cmd := exec.Command("go", "tool", "-n", name)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tool %s: go tool -n in %s: %w: %s", name, dir, err, strings.TrimSpace(stderr.String()))
	}
	p := strings.TrimSpace(string(out))
	if !isExecutable(p) {
		return "", fmt.Errorf("tool %s: go tool -n printed %q, not an executable", name, p)
	}
	return p, nil
}

// toolsModule returns the directory of scripts/tools/go.mod, looked for
// from the working directory (a package directory under go test) upwards.
func toolsModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		tools := filepath.Join(dir, "scripts", "tools")
		if _, err := os.Stat(filepath.Join(tools, "go.mod")); err == nil {
			return tools, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/tools/go.mod not found above the working directory")
		}
		dir = parent
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
