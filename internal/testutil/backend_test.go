package testutil

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// client returns an HTTP client whose idle connections are closed by a
// cleanup, so that CheckLeaks sees no keep-alive goroutines.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableKeepAlives: false}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHTTPBackendAnswers(t *testing.T) {
	CheckLeaks(t)
	b := HTTPBackend(t, "alpha")
	c := client(t)
	tests := []struct {
		path     string
		status   int
		body     string
		bodySize int
	}{
		{path: "/", status: 200, body: "alpha\n"},
		{path: "/any/path?x=1", status: 200, body: "alpha\n"},
		{path: "/slow?ms=30", status: 200, body: "alpha\n"},
		{path: "/size?n=100000", status: 200, bodySize: 100000},
		{path: "/size?n=0", status: 200, bodySize: 0},
		{path: "/status?code=503", status: 503, body: "alpha\n"},
		{path: "/ws", status: 400},
	}
	for i, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			start := time.Now()
			resp, body := get(t, c, b.URL()+tt.path, "X-Forwarded-For", fmt.Sprint("192.0.2.", i))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("X-Backend"); got != "alpha" {
				t.Fatalf("X-Backend %q", got)
			}
			if tt.body != "" && body != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if tt.bodySize > 0 && len(body) != tt.bodySize {
				t.Fatalf("body of %d bytes, want %d", len(body), tt.bodySize)
			}
			if strings.HasPrefix(tt.path, "/slow") && time.Since(start) < 30*time.Millisecond {
				t.Fatal("/slow answered too soon")
			}
			if got := b.LastHeader().Get("X-Forwarded-For"); got != fmt.Sprint("192.0.2.", i) {
				t.Fatalf("recorded X-Forwarded-For %q", got)
			}
			r, ok := b.LastRequest()
			if !ok || r.URI != tt.path || r.Method != "GET" {
				t.Fatalf("last request %+v", r)
			}
		})
	}
	resp, err := c.Post(b.URL()+"/echo", "text/plain", strings.NewReader(strings.Repeat("body", 50000)))
	if err != nil {
		t.Fatal(err)
	}
	echoed, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(echoed) != strings.Repeat("body", 50000) {
		t.Fatalf("/echo answered %d bytes, %v", len(echoed), err)
	}
	if got := b.Requests(); got != int64(len(tests))+1 {
		t.Fatalf("Requests() = %d, want %d", got, len(tests)+1)
	}
	if got := len(b.History()); got != len(tests)+1 {
		t.Fatalf("History() has %d requests", got)
	}
}

func TestHTTPBackendUpgradeEcho(t *testing.T) {
	CheckLeaks(t)
	b := HTTPBackend(t, "ws")
	c := dialTCP(t, b.Addr)
	// The first payload bytes travel with the request.
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello ")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("X-Backend") != "ws" {
		t.Fatalf("status %d, header %v", resp.StatusCode, resp.Header)
	}
	io.WriteString(c, "world")
	c.CloseWrite()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestHTTPBackendCloseAndRestart(t *testing.T) {
	CheckLeaks(t)
	b := HTTPBackend(t, "beta")
	c := client(t)
	if _, body := get(t, c, b.URL()); body != "beta\n" {
		t.Fatalf("body %q", body)
	}

	// An upgraded connection and a pending slow request are both cut.
	up := dialTCP(t, b.Addr)
	fmt.Fprintf(up, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(up), nil); err != nil {
		t.Fatal(err)
	}
	slowErr := make(chan error, 1)
	go func() {
		resp, err := c.Get(b.URL() + "/slow?ms=10000")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slowErr <- err
	}()
	Eventually(t, "3 requests", func() bool { return b.Requests() == 3 })

	start := time.Now()
	b.Close()
	b.Close()
	if err := <-slowErr; err == nil {
		t.Fatal("slow request succeeded on a killed backend")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("Close took too long")
	}
	if _, err := up.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("upgraded connection read: %v, want a reset", err)
	}
	if _, err := net.DialTimeout("tcp", b.Addr, time.Second); err == nil {
		t.Fatal("killed backend accepts connections")
	}

	b.Restart(t)
	c.CloseIdleConnections()
	if resp, body := get(t, c, b.URL()); body != "beta\n" || resp.Header.Get("X-Backend") != "beta" {
		t.Fatalf("after restart: %q", body)
	}
	if got := b.Requests(); got != 4 {
		t.Fatalf("Requests() = %d, want 4", got)
	}
	// Restart of a running backend kills and revives it.
	b.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL(), nil)
	c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
