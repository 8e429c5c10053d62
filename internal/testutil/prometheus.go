package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PrometheusWait bounds every wait on a Prometheus server.
const PrometheusWait = 30 * time.Second

// Prometheus is a real Prometheus server (Debian's prometheus package) on
// 127.0.0.1, scraping one target every second.
type Prometheus struct {
	// API is the address of its query API, http://ADDR/api/v1/query.
	API string
}

// StartPrometheus starts Prometheus with a temporary configuration and
// storage that scrape target (HOST:PORT, path /metrics) as job "lbkit"
// every second, and waits until a first scrape has found the target up.
// Prometheus stops at tb.Cleanup, and its output is logged when the test
// failed. Without the binary the test skips, or fails under CI=true.
func StartPrometheus(tb testing.TB, target string) *Prometheus {
	tb.Helper()
	bin := LookBinary(tb, "prometheus", "prometheus")
	dir := tb.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lbkit
    static_configs:
      - targets: [%q]
`, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(tb))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel() // kills Prometheus
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("prometheus output:\n%s", output.String())
		}
	})
	p := &Prometheus{API: "http://" + addr + "/api/v1/query"}
	p.WaitQuery(tb, `up{job="lbkit"}`, func(r map[string]float64) bool { return r[""] == 1 })
	return p
}

// WaitQuery runs the PromQL query every 200 ms until ok holds for its
// result, a map of the value of each series by its server label ("" when
// it has none), and fails tb after PrometheusWait.
func (p *Prometheus) WaitQuery(tb testing.TB, query string, ok func(map[string]float64) bool) {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(PrometheusWait)
	for {
		r, err := instantQuery(client, p.API+"?query="+url.QueryEscape(query))
		if err == nil && ok(r) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("query %s: last result %v (%v), not the one expected within %v", query, r, err, PrometheusWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// instantQuery runs the query URL u and returns the value of each series
// of its vector result by its server label.
func instantQuery(client *http.Client, u string) (map[string]float64, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Status != "success" || body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: status %q, result %q: %s", resp.Status, body.Status, body.Data.ResultType, body.Error)
	}
	r := make(map[string]float64)
	for _, s := range body.Data.Result {
		v, ok := s.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("value %v is not a string", s.Value[1])
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", v, err)
		}
		r[s.Metric["server"]] = f
	}
	return r, nil
}
