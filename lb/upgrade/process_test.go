//go:build linux || darwin || freebsd

package upgrade

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process's environment: its role, the upgrade socket and the
// address to listen on.
const (
	envRole = "LBKIT_UPGRADE_HELPER"
	envPath = "LBKIT_UPGRADE_PATH"
	envAddr = "LBKIT_UPGRADE_ADDR"
)

// TestHelperProcess is the other process of the tests below, not a test:
// it runs only with LBKIT_UPGRADE_HELPER set. It reports on stdout and
// runs until its stdin closes.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		t.Skip("helper process of the cross-process tests")
	}
	ctx := context.Background()
	u := &Upgrader{Path: os.Getenv(envPath), Timeout: 5 * time.Second}
	defer u.Close()
	switch role {
	case "successor":
		if err := u.Start(ctx); err != nil {
			fmt.Printf("start error: %v\n", err)
			break
		}
		ln, err := u.Listen(ctx, "tcp", os.Getenv(envAddr))
		if err != nil {
			fmt.Printf("listen error: %v\n", err)
			break
		}
		defer ln.Close()
		go serveName(ln, "child")
		if err := u.Ready(ctx); err != nil {
			fmt.Printf("ready error: %v\n", err)
			break
		}
		fmt.Printf("ready\n")
	case "raw":
		// A successor that trusts anyone: what does the old process send?
		c, err := net.Dial("unix", u.Path)
		if err != nil {
			fmt.Printf("dial error: %v\n", err)
			break
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(helloMessage())
		answer, err := io.ReadAll(c)
		fmt.Printf("answer %q %v\n", answer, err)
	case "old":
		ln, err := u.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Printf("listen error: %v\n", err)
			break
		}
		defer ln.Close()
		if err := u.Ready(ctx); err != nil {
			fmt.Printf("ready error: %v\n", err)
			break
		}
		// Let other users reach the socket, so that the credential check
		// is what stops them.
		os.Chmod(u.Path, 0o666)
		fmt.Printf("ready\n")
	}
	io.Copy(io.Discard, os.Stdin)
}

// helper starts the helper process in role, as uid (-1: this user), and
// returns the first line it prints.
func helper(t *testing.T, role, path, addr string, uid int) string {
	t.Helper()
	bin := os.Args[0]
	if uid >= 0 {
		// Another user must be able to run the test binary and reach
		// the upgrade socket's directory.
		dir, err := os.MkdirTemp("", "upgbin")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		bin = filepath.Join(dir, "helper.test")
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, filepath.Dir(path)} {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envPath+"="+path, envAddr+"="+addr)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("the helper process did not stop")
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		return line
	case <-time.After(20 * time.Second):
		t.Fatalf("the helper process (%s) said nothing", role)
		return ""
	}
}

// TestAnotherProcess hands a listener to another process, which serves
// the connections once this one closes its listener.
func TestAnotherProcess(t *testing.T) {
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
	if line := helper(t, "successor", path, ln.Addr().String(), -1); line != "ready" {
		t.Fatalf("successor: %s", line)
	}
	if !closed(old.Upgraded()) {
		t.Fatal("the successor is ready and the old process was not told")
	}
	ln.Close()
	for range 3 {
		if got := greeting(t, "tcp", ln.Addr().String()); got != "child" {
			t.Fatalf("after the upgrade: %q", got)
		}
	}
}

// requireRoot skips a test that runs a process as another user unless
// this one may (root), as in CI's containers.
func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
}

// nobody is the uid the credential tests run the other process as.
const nobody = 65534

// TestOtherUserSuccessor: a process of another user that reaches the
// upgrade socket gets no socket.
func TestOtherUserSuccessor(t *testing.T) {
	requireRoot(t)
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
	os.Chmod(path, 0o666) // past the file's mode: the credential check stops it
	line := helper(t, "raw", path, "", nobody)
	if !strings.Contains(line, "ERR another user") || strings.Contains(line, " OK ") {
		t.Fatalf("successor of another user: %s", line)
	}
	if closed(old.Upgraded()) {
		t.Fatal("the old process drains for another user")
	}
	if err := newUpgrader(t, path).Start(ctx); err != nil {
		t.Fatalf("a successor of this user afterwards: %v", err)
	}
}

// TestOtherUserPredecessor: a process of another user serving the upgrade
// socket is not trusted either.
func TestOtherUserPredecessor(t *testing.T) {
	requireRoot(t)
	path := sockPath(t)
	if line := helper(t, "old", path, "", nobody); line != "ready" {
		t.Fatalf("old process: %s", line)
	}
	u := newUpgrader(t, path)
	err := u.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("runs as user %d", nobody)) {
		t.Fatalf("Start from another user's process = %v", err)
	}
	if len(u.Inherited()) != 0 {
		t.Fatalf("inherited %q", u.Inherited())
	}
}
