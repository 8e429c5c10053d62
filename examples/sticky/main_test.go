package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

func TestSticky(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ front, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	cfg := config{listen: "127.0.0.1:0", admin: "127.0.0.1:0", cookie: "SRV", secret: strings.Repeat("ab", 32)}
	go func() { done <- run(ctx, cfg, func(a, b string) { ready <- addrs{a, b} }) }()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second}
	get := func() (string, http.Header) {
		t.Helper()
		resp, err := c.Get("http://" + a.front + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Backend"), resp.Header
	}
	home, h := get()
	if !strings.HasPrefix(h.Get("Set-Cookie"), "SRV=") {
		t.Fatalf("no sticky cookie: %q", h.Values("Set-Cookie"))
	}
	for range 5 {
		if got, _ := get(); got != home {
			t.Fatalf("went to %s, pinned to %s", got, home)
		}
	}
	// Take the backend out through the admin endpoint: the session moves.
	name := "s" + strings.TrimPrefix(home, "backend-") // demo backends are named by position
	resp, err := c.Post("http://"+a.admin+"/down?server="+name, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin down: %s", resp.Status)
	}
	moved, h := get()
	if moved == home || h.Get("X-Sticky-Moved") != "1" {
		t.Fatalf("after down: %s, moved header %q", moved, h.Get("X-Sticky-Moved"))
	}
	if got, _ := get(); got != moved {
		t.Fatalf("went to %s, re-pinned to %s", got, moved)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStickyBadSecret(t *testing.T) {
	for _, s := range []string{"zz", "abcd"} {
		// A secret accepted by mistake serves until the timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		served := false
		err := run(ctx, config{listen: "127.0.0.1:0", secret: s}, func(string, string) { served = true })
		cancel()
		if err == nil || served {
			t.Fatalf("-secret %q accepted (run = %v)", s, err)
		}
	}
}
