package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// prometheusWait bounds every wait on the Prometheus server.
const prometheusWait = 30 * time.Second

// TestPrometheusScrapes runs a real Prometheus server on 127.0.0.1 that
// scrapes the collector every second, and checks through its query API
// that the requests it counts per server are those that were sent.
func TestPrometheusScrapes(t *testing.T) {
	bin := testutil.LookBinary(t, "prometheus", "prometheus")
	s := newSetup(t)
	s.traffic(t)
	target := serveMetrics(t, s.collect)

	dir := t.TempDir()
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
		t.Fatal(err)
	}
	addr := freeAddr(t)
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
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills Prometheus
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", output.String())
		}
	})

	api := "http://" + addr + "/api/v1/query?query="
	// A first scrape has happened when the target is up.
	waitQuery(t, api, `up{job="lbkit"}`, func(r map[string]float64) bool { return r[""] == 1 })

	want := map[string]float64{"a": float64(s.a.Requests()), "b": float64(s.b.Requests())}
	if want["a"]+want["b"] != 6 {
		t.Fatalf("backends received %v requests, want 6 in all", want)
	}
	waitQuery(t, api, `sum by (server) (lbkit_server_http_requests_total{job="lbkit",proxy="web"})`,
		func(r map[string]float64) bool { return len(r) == 2 && r["a"] == want["a"] && r["b"] == want["b"] })
	waitQuery(t, api, `lbkit_backend_http_responses_total{job="lbkit",proxy="web",code="4xx"}`,
		func(r map[string]float64) bool { return r[""] == 2 })
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitQuery runs the PromQL query every 200 ms until ok holds for its
// result, a map of the value of each series by its server label ("" when
// it has none), and fails t after prometheusWait.
func waitQuery(t *testing.T, api, query string, ok func(map[string]float64) bool) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(prometheusWait)
	var last string
	for {
		r, err := instantQuery(client, api+url.QueryEscape(query))
		if err == nil && ok(r) {
			return
		}
		last = fmt.Sprint(r, err)
		if time.Now().After(deadline) {
			t.Fatalf("query %s: last result %s, not the one expected within %v", query, last, prometheusWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

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
