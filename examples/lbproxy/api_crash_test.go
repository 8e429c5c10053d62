package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	lbconfig "github.com/lbkit/lbkit/lb/config"
)

// lbproxyArgsEnv holds the command line of TestLbproxyProcess, as JSON.
const lbproxyArgsEnv = "LBKIT_LBPROXY_ARGS"

// TestLbproxyProcess is lbproxy's main in a process of its own: this test
// binary, run again with $LBKIT_LBPROXY_ARGS as the command line, so that
// a test can kill it. Without the variable it does nothing.
func TestLbproxyProcess(t *testing.T) {
	args := os.Getenv(lbproxyArgsEnv)
	if args == "" {
		t.Skip("the lbproxy process of TestAPICrashDuringWrites")
	}
	fs := flag.NewFlagSet("lbproxy", flag.ExitOnError)
	cfg := newConfig(fs)
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fs.Parse(argv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// lbproxyProcess starts lbproxy with args in a process of its own and
// returns it with the address of its admin listener.
func lbproxyProcess(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestLbproxyProcess$", "-test.count=1")
	argv, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), lbproxyArgsEnv+"="+string(argv))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "admin endpoints on http://"); ok {
			go io.Copy(io.Discard, out)
			return cmd, strings.TrimSuffix(a, "/")
		}
	}
	cmd.Wait()
	t.Fatalf("lbproxy did not start: %v\n%s", sc.Err(), stderr.String())
	return nil, ""
}

// TestAPICrashDuringWrites kills an lbproxy process with SIGKILL in the
// middle of a stream of API writes, three times at different moments.
// Each time the file it leaves is a valid document holding the last
// acknowledged write or the one in flight, and a new lbproxy serves it:
// the API answers it and the frontend serves traffic.
//
// The window: the API acknowledges a write once the runtime runs it and
// FileStore.Save has renamed the new file into place and synced the
// directory, so an acknowledged write is on disk. The one write in flight
// at the kill is stored if its rename happened before the kill, and not
// otherwise; either way the file is whole (rename is atomic). A write
// applied but not yet stored is lost with the process, whose successor
// starts from the file.
func TestAPICrashDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	webPort := sameportServers(t, "web", true, "127.0.0.2", "127.0.0.3")
	front := freeTCPPort(t)
	dir := t.TempDir()
	file, tok := filepath.Join(dir, "lb.json"), filepath.Join(dir, "token")
	doc := fmt.Sprintf(`{"lb": {"id": "lb", "name": "demo"},
	  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %d, "pool": ["127.0.0.2"]}],
	  "frontends": [{"id": "front", "inbound_port": %d, "backend_id": "web"}]}`, webPort, front)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok, []byte(apiToken), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", file, "-ip", "127.0.0.1", "-admin", "127.0.0.1:0", "-admin-token-file", tok, "-grace", "1s"}
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(admin, method, path, body string) (*http.Response, error) {
		req, err := http.NewRequest(method, "http://"+admin+"/lb/v1/zones/fr-par-1"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Auth-Token", apiToken)
		return client.Do(req)
	}
	for round, killAfter := range []int{4, 17, 29} {
		cmd, admin := lbproxyProcess(t, args...)
		acked, inFlight := "", ""
		killed := make(chan struct{})
		for i := 0; i < 100; i++ {
			name := fmt.Sprintf("round%d-write%d", round, i)
			if i == killAfter {
				go func() {
					time.Sleep(time.Duration(round) * 2 * time.Millisecond)
					cmd.Process.Signal(syscall.SIGKILL)
					close(killed)
				}()
			}
			// Every write renames the load balancer and changes the
			// pool, so that the runtime has work to do.
			pool := `["127.0.0.2"]`
			if i%2 == 1 {
				pool = `["127.0.0.2", "127.0.0.3"]`
			}
			inFlight = name
			resp, err := send(admin, "PUT", "/lbs/lb", `{"name": "`+name+`"}`)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("write %s: %s", name, resp.Status)
				}
				resp, err = send(admin, "PUT", "/backends/web/servers", `{"server_ip": `+pool+`}`)
			}
			if err != nil {
				break
			}
			resp.Body.Close()
			acked, inFlight = name, ""
		}
		<-killed
		cmd.Wait()

		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d, err := lbconfig.Load(data)
		if err != nil {
			t.Fatalf("round %d: the file left is not a valid document: %v\n%s", round, err, data)
		}
		if got := d.LB.Name; got != acked && got != inFlight {
			t.Fatalf("round %d: the file holds %q; acknowledged %q, in flight %q", round, got, acked, inFlight)
		}
		t.Logf("round %d: killed with %q acknowledged, %q in flight; the file holds %q", round, acked, inFlight, d.LB.Name)

		// A new lbproxy serves the file: through the API and the frontend.
		next, admin := lbproxyProcess(t, args...)
		resp, err := send(admin, "GET", "/lbs/lb", "")
		if err != nil {
			t.Fatal(err)
		}
		var lb struct{ Name string }
		err = json.NewDecoder(resp.Body).Decode(&lb)
		resp.Body.Close()
		if err != nil || lb.Name != d.LB.Name {
			t.Fatalf("the new lbproxy serves %q (%v), the file holds %q", lb.Name, err, d.LB.Name)
		}
		resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/", front))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "web ") {
			t.Fatalf("the frontend after the restart: %s %q", resp.Status, body)
		}
		next.Process.Signal(syscall.SIGTERM)
		if err := next.Wait(); err != nil {
			t.Fatalf("the new lbproxy stopping: %v", err)
		}
	}
}
