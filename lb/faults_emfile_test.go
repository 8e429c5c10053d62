//go:build linux

package lb_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// faultChildEnv, set in the environment of a re-executed test binary, makes
// TestFaultAcceptEMFILE serve a frontend out of file descriptors: its value
// is the mode ("tcp" or "http") and the address of the server behind.
const faultChildEnv = "LBKIT_FAULT_EMFILE_CHILD"

// childNoFile is the descriptor limit of the child process.
const childNoFile = 64

// echoBackend echoes a connection back to its client. Each client costs
// exactly one descriptor, held until it closes.
type echoBackend struct{}

func (echoBackend) ServeConn(_ context.Context, c *lb.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

// TestFaultAcceptEMFILE runs a frontend in a child process whose descriptor
// limit is childNoFile, fills its descriptors with idle clients, and checks
// that accept errors (EMFILE) are retried with back-off rather than in a
// busy loop, and that once clients leave, new ones are served again.
func TestFaultAcceptEMFILE(t *testing.T) {
	if v := os.Getenv(faultChildEnv); v != "" {
		mode, backend, _ := strings.Cut(v, " ")
		emfileChild(t, mode, backend)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process for seconds")
	}
	for _, mode := range []string{"tcp", "http"} {
		t.Run(mode, func(t *testing.T) { testAcceptEMFILE(t, mode) })
	}
}

func testAcceptEMFILE(t *testing.T, mode string) {
	backend := testutil.HTTPBackend(t, "behind")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultAcceptEMFILE$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), faultChildEnv+"="+mode+" "+backend.Addr)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close() // the child serves until its stdin ends
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	// The child's output: its address first, then one line per accept error.
	addrc := make(chan string, 1)
	var acceptErrors atomic.Int64
	var tail atomic.Value
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			tail.Store(line)
			if a, ok := strings.CutPrefix(line, "addr "); ok {
				addrc <- a
			}
			if strings.Contains(strings.ToLower(line), "accept error") {
				acceptErrors.Add(1)
			}
		}
		cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		t.Fatalf("child exited before serving: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("child did not start")
	}

	// More idle clients than the child has descriptors: the kernel completes
	// the handshakes, the child accepts until EMFILE.
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range 2 * childNoFile {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		must(t, err)
		clients = append(clients, c)
	}
	testutil.Eventually(t, "an accept error", func() bool { return acceptErrors.Load() > 0 })

	// Out of descriptors, the accept loop backs off: a busy loop would log
	// thousands of errors a second.
	const window = 1500 * time.Millisecond
	before := acceptErrors.Load()
	time.Sleep(window) // a measurement window, not a wait for an event
	n := acceptErrors.Load() - before
	t.Logf("%d accept errors in %v", n, window)
	if n > 40 {
		t.Fatalf("%d accept errors in %v: no back-off (last line %v)", n, window, tail.Load())
	}
	if n == 0 {
		t.Fatal("no accept error in the window: the descriptors were not exhausted")
	}

	// The clients leave; the frontend serves again.
	for _, c := range clients {
		c.Close()
	}
	clients = nil
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	testutil.Eventually(t, "a client served again", func() bool {
		if mode == "http" {
			resp, err := hc.Get("http://" + addr + "/")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200 && string(body) == "behind\n"
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "ping")
		b := make([]byte, 4)
		_, err = io.ReadFull(c, b)
		return err == nil && string(b) == "ping"
	})
	select {
	case <-exited:
		t.Fatalf("child exited: %s", stderr.String())
	default:
	}
}

// emfileChild is the child process: it lowers its descriptor limit and
// serves a frontend (an echoing TCPFrontend, or an http.Server with a
// ReverseProxy to backend) until its stdin ends, logging accept errors on
// stdout.
func emfileChild(t *testing.T, mode, backend string) {
	var lim syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	lim.Cur = childNoFile
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var fe lb.Frontend
	switch mode {
	case "tcp":
		fe = &lb.TCPFrontend{Name: "fe", Backend: echoBackend{}, HandshakeTimeout: -1,
			Logger: slog.New(slog.NewTextHandler(os.Stdout, nil))}
	case "http":
		pool := &lb.Pool{}
		must(t, pool.Update([]lb.Server{{Addr: backend}}))
		fe = &http.Server{Handler: &lb.ReverseProxy{Pool: pool}, ReadHeaderTimeout: time.Minute,
			ErrorLog: log.New(os.Stdout, "", 0)}
	default:
		t.Fatalf("mode %q", mode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, fe, ln, time.Second) }()
	fmt.Printf("addr %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
