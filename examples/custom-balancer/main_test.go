package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// get fetches url and returns the body, trimmed.
func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q %v", url, resp.Status, b, err)
	}
	return strings.TrimSpace(string(b))
}

// start runs setup and serve, and stops them at the end of the test.
func start(t *testing.T, backends string) (*app, string) {
	t.Helper()
	var out bytes.Buffer
	a, err := setup("127.0.0.1:0", backends, &out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not return after cancel")
		}
	})
	return a, out.String()
}

func TestDemo(t *testing.T) {
	a, out := start(t, "")
	if !strings.Contains(out, "started demo backend c on 127.0.0.1:") || !strings.Contains(out, "serving on http://"+a.ln.Addr().String()) {
		t.Errorf("output:\n%s", out)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	counts := map[string]int{}
	for range 20 {
		counts[get(t, c, "http://"+a.ln.Addr().String()+"/")]++
	}
	// Every backend is tried once; then the slow one (c) is left alone.
	if counts["a"] == 0 || counts["b"] == 0 || counts["c"] != 1 || counts["a"]+counts["b"] != 19 {
		t.Errorf("answers %v: want a and b tried, c once", counts)
	}
}

func TestBackendsFlag(t *testing.T) {
	var addrs []string
	for _, name := range []string{"x", "y"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	a, out := start(t, strings.Join(addrs, ","))
	if strings.Contains(out, "demo") {
		t.Errorf("demo backends started with -backends: %s", out)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	seen := map[string]bool{}
	for range 4 {
		seen[get(t, c, "http://"+a.ln.Addr().String()+"/")] = true
	}
	if !seen["x"] || !seen["y"] {
		t.Errorf("answers %v: want both backends tried", seen)
	}
}

func TestFastestSpreadsInFlight(t *testing.T) {
	f := &Fastest{}
	p := &lb.Pool{Balancer: f}
	err := p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}, {Name: "c", Addr: "127.0.0.1:3"}})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot().Servers
	f.Observe(s[0], lb.Outcome{Duration: 10 * time.Millisecond})
	f.Observe(s[1], lb.Outcome{Duration: 10 * time.Millisecond})
	f.Observe(s[2], lb.Outcome{Duration: 100 * time.Millisecond})
	// Held requests: a and b share them while their wait stays below c's.
	for range 10 {
		if _, err := p.Acquire(context.Background(), lb.PickInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range p.Status() {
		if want := map[string]int64{"a": 5, "b": 5, "c": 0}[st.Name]; st.Active != want {
			t.Errorf("server %s: %d in flight, want %d", st.Name, st.Active, want)
		}
	}
}
