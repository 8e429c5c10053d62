package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestQuickstart(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", "", "roundrobin", func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	seen := map[string]int{}
	for range 9 {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), "hello from backend-") {
			t.Fatalf("body %q", body)
		}
		seen[resp.Header.Get("X-Backend")]++
	}
	if len(seen) != 3 || seen["backend-1"] != 3 {
		t.Fatalf("spread over demo backends = %v, want 3 each", seen)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
