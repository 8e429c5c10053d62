package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

// crashEnv names the file a child process serves the API over; set, it
// makes TestCrashChild the server.
const crashEnv = "LBKIT_API_CRASH_FILE"

type nopApplier struct{}

func (nopApplier) Apply(context.Context, *config.Document) error { return nil }

// TestCrashChild is the process TestCrashDuringWrites kills: it serves the
// API over the file named by $LBKIT_API_CRASH_FILE, prints its address,
// and serves until killed. Without the variable it does nothing.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("the child process of TestCrashDuringWrites")
	}
	m := &config.Manager{Store: &config.FileStore{Path: path}, Applier: nopApplier{}}
	if err := m.Start(context.Background()); err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	fmt.Println("addr", ln.Addr())
	srv := &http.Server{Handler: &api.Handler{Manager: m, Token: token, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, ReadHeaderTimeout: 5 * time.Second}
	srv.Serve(ln)
}

// child starts TestCrashChild over path and returns it with its address.
func child(t *testing.T, path string) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, "http://" + addr
		}
	}
	t.Fatalf("the child did not start: %v", sc.Err())
	return nil, ""
}

// TestCrashDuringWrites kills the API's process with SIGKILL in the middle
// of a stream of writes, three times at different moments, and checks that
// the file it leaves is a valid document holding the last acknowledged
// write or the one in flight at the kill, and that a new process starts
// from it.
//
// The window: a write is acknowledged only after FileStore.Save has
// renamed the new file into place and synced the directory, so an
// acknowledged write is on disk. The one write in flight when the process
// dies is stored if the rename happened before the kill and not otherwise;
// either way the file is whole, never torn (rename is atomic).
func TestCrashDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for round, killAfter := range []int{5, 23, 41} {
		cmd, url := child(t, path)
		acked, inFlight := "demo", ""
		if round > 0 {
			acked = readName(t, path)
		}
		killed := make(chan struct{})
		for i := 0; i < 200; i++ {
			name := fmt.Sprintf("round%d-write%d", round, i)
			if i == killAfter {
				// Kill while this write is on its way.
				go func() {
					time.Sleep(time.Duration(round) * 1500 * time.Microsecond)
					cmd.Process.Signal(syscall.SIGKILL)
					close(killed)
				}()
			}
			inFlight = name
			req, _ := http.NewRequest("PUT", url+lbPath, strings.NewReader(`{"name": "`+name+`"}`))
			req.Header.Set("X-Auth-Token", token)
			resp, err := client.Do(req)
			if err != nil {
				break
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("write %s: %s", name, resp.Status)
			}
			acked, inFlight = name, ""
		}
		<-killed
		cmd.Wait()
		got := readName(t, path)
		if got != acked && got != inFlight {
			t.Fatalf("round %d: the file holds %q; acknowledged %q, in flight %q", round, got, acked, inFlight)
		}
		t.Logf("round %d: killed after %q acknowledged (%q in flight); the file holds %q", round, acked, inFlight, got)

		// A new process serves what the file holds.
		_, url = child(t, path)
		req, _ := http.NewRequest("GET", url+lbPath, nil)
		req.Header.Set("X-Auth-Token", token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var lb struct{ Name string }
		decodeBody(t, resp, &lb)
		if lb.Name != got {
			t.Fatalf("the restarted process serves %q, the file holds %q", lb.Name, got)
		}
	}
}

// readName loads the file as the process would and returns the load
// balancer's name.
func readName(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.Load(data)
	if err != nil {
		t.Fatalf("the file is not a valid document: %v\n%s", err, data)
	}
	return d.LB.Name
}
