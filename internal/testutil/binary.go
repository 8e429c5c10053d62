package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
// scripts/test.sh installs.
func LookBinary(tb testing.TB, name, pkg string, extraDirs ...string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin", filepath.Join(os.Getenv("HOME"), "go", "bin")}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, pattern := range extraDirs {
		matches, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(sort.StringSlice(matches))) // newest version first
		dirs = append(dirs, matches...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if InCI() {
		tb.Fatalf("%s not found (Debian package %s): scripts/test.sh installs it", name, pkg)
	}
	tb.Skipf("%s not found (Debian package %s); run scripts/test.sh to install it", name, pkg)
	return ""
}
