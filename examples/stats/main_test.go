package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestStatsExample sends known traffic through the example and reads it
// back from its own /metrics and /status endpoints.
func TestStatsExample(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type addrs struct{ lb, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", "127.0.0.1:0", "", func(l, a string) { ready <- addrs{l, a} })
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the example did not start")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	get := func(url string) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return string(body)
	}
	for range 9 {
		get("http://" + a.lb + "/")
	}

	exposition := get("http://" + a.admin + "/metrics")
	for _, s := range []string{"s1", "s2", "s3"} {
		want := `lbkit_server_http_responses_total{code="2xx",proxy="web",server="` + s + `"} 3`
		if !strings.Contains(exposition, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if want := `lbkit_frontend_http_requests_total{proxy="www"} 9`; !strings.Contains(exposition, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	var report struct {
		Backends []struct {
			Name    string `json:"name"`
			Servers []struct {
				Name string `json:"name"`
			} `json:"servers"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(get("http://"+a.admin+"/status?format=json")), &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Backends) != 1 || report.Backends[0].Name != "web" || len(report.Backends[0].Servers) != 3 {
		t.Errorf("/status JSON: %+v", report)
	}
	if page := get("http://" + a.admin + "/"); !strings.Contains(page, "<table") {
		t.Errorf("/ does not lead to the status page")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the example did not stop")
	}
}
