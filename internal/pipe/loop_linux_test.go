package pipe

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// TestLoopEnvSwitch checks that two TCP connections go to the event loop
// by default, and that LBKIT_PIPE=goroutines in the environment (read at
// start, so checked in a child process) keeps them off it.
func TestLoopEnvSwitch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if os.Getenv("PIPE_TEST_CHILD") == "1" {
		if canLoop(c, s) {
			t.Fatal("LBKIT_PIPE=goroutines: the copy would still go to the event loop")
		}
		return
	}
	if os.Getenv("LBKIT_PIPE") != "" {
		t.Skip("LBKIT_PIPE is set for this run")
	}
	if !canLoop(c, s) {
		t.Fatal("two TCP connections do not go to the event loop")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopEnvSwitch$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LBKIT_PIPE=goroutines", "PIPE_TEST_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child with LBKIT_PIPE=goroutines: %v\n%s", err, out)
	}
}
