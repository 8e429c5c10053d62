package main

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestTCPExample(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", "", "roundrobin", func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the example did not start serving")
	}
	seen := map[string]bool{}
	for range 6 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		greeting, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimSpace(greeting), "hello from ")
		seen[name] = true
		c.Write([]byte("ping\n"))
		if echo, _ := r.ReadString('\n'); echo != name+": ping\n" {
			t.Fatalf("echo %q", echo)
		}
		c.Close()
	}
	if len(seen) != 3 {
		t.Fatalf("connections reached %v, want all three demo servers", seen)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second): // past the 30 s grace
		t.Fatal("run did not return after ctx was done")
	}
}
