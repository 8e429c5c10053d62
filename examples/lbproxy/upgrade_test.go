//go:build linux || darwin || freebsd

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/upgrade"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// buildLBProxy builds this command into a temporary directory.
func buildLBProxy(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is needed to build lbproxy: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "lbproxy")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is an lbproxy process whose standard output the test reads, line by
// line; processes it starts with SIGUSR2 write to the same output.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string   // closed when every writer has exited
	start  string        // its first line: its pid, and the sockets it took
	exited chan struct{} // closed when cmd has exited
	err    error         // cmd's exit status, once exited is closed
}

// startProc runs bin with args and waits until it serves upgrades.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p, ok := tryStartProc(t, bin, args...)
	if !ok {
		t.Fatalf("lbproxy %v ended before it served", args)
	}
	return p
}

// tryStartProc is startProc, reporting a process that ended before it
// served instead of failing the test.
func tryStartProc(t *testing.T, bin string, args ...string) (*proc, bool) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(bin, args...), lines: make(chan string, 1024), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = pw, os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		defer close(p.lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for this line
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	var ok bool
	if p.start, ok = p.nextLine(t, "lbproxy: pid "); !ok {
		return p, false
	}
	_, ok = p.nextLine(t, "lbproxy: serving upgrades on ")
	return p, ok
}

// waitLine waits up to 20 s for an output line that has s, and returns it.
func (p *proc) waitLine(t *testing.T, s string) string {
	t.Helper()
	line, ok := p.nextLine(t, s)
	if !ok {
		t.Fatalf("lbproxy ended without printing %q", s)
	}
	return line
}

// nextLine is waitLine, reporting the end of the output (ok false)
// instead of failing the test.
func (p *proc) nextLine(t *testing.T, s string) (line string, ok bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok || strings.Contains(line, s) {
				return line, ok
			}
		case <-timeout:
			t.Fatalf("lbproxy did not print %q within 20s", s)
		}
	}
}

// waitExit waits up to 20 s for p to exit, and fails the test unless it
// exited with status 0.
func (p *proc) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("lbproxy pid %d exited: %v", p.cmd.Process.Pid, p.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("lbproxy pid %d did not exit within 20s of the upgrade", p.cmd.Process.Pid)
	}
}

// load counts the outcomes of a client loop.
type load struct {
	name string
	// tolerant: failures are reported, not errors. Only HTTP/3 needs it:
	// QUIC has no accept queue, so while both processes read the shared
	// UDP socket a client's packets may reach the one that does not know
	// its connection (see lb/upgrade's documentation).
	tolerant        bool
	ok, failed, ref atomic.Int64 // ref: refused connections, also in failed
	mu              sync.Mutex
	firstErr        error
}

func (l *load) fail(err error) {
	l.failed.Add(1)
	if errors.Is(err, syscall.ECONNREFUSED) {
		l.ref.Add(1)
	}
	l.mu.Lock()
	if l.firstErr == nil {
		l.firstErr = err
	}
	l.mu.Unlock()
}

// maxLoad bounds the iterations of each client loop, whatever the time.
const maxLoad = 200_000

// runLoad runs fn in a loop until stop is closed or maxLoad iterations,
// counting its outcomes in l.
func runLoad(wg *sync.WaitGroup, stop <-chan struct{}, l *load, fn func() error) {
	wg.Go(func() {
		for range maxLoad {
			select {
			case <-stop:
				return
			default:
			}
			if err := fn(); err != nil {
				l.fail(err)
			} else {
				l.ok.Add(1)
			}
		}
	})
}

// httpGet returns a client loop body: a GET through c that must answer 200.
func httpGet(c *http.Client, url string) func() error {
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
}

// echoStream returns a client loop body: a TCP connection through lbproxy
// to an echo server, 100 lines written and read back, closed.
func echoStream(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for i := range 100 {
			want := "line " + strconv.Itoa(i) + "\n"
			if _, err := io.WriteString(c, want); err != nil {
				return err
			}
			got, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("after %d lines: %w", i, err)
			}
			if got != want {
				return fmt.Errorf("echo %q, want %q", got, want)
			}
		}
		return nil
	}
}

// TestUpgrade runs lbproxy under load, in http mode (keep-alive and
// new-connection clients), tcp mode (echo streams), https mode with HTTP/3
// and the configuration-file mode, and upgrades it
// twice: by starting the same command again, then by SIGUSR2 after the
// binary was replaced. No request may fail and no connection be refused;
// each old process must exit once drained, and the newest must serve. A
// successor that fails leaves the running process serving.
func TestUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs lbproxy processes")
	}
	bin := buildLBProxy(t)
	for _, mode := range []string{"http", "tcp", "https-http3", "config"} {
		t.Run(mode, func(t *testing.T) { testUpgrade(t, bin, mode) })
	}
	t.Run("failed successor", func(t *testing.T) { testFailedSuccessor(t, bin) })
}

// upgradeArgs returns lbproxy's command line for testUpgrade's mode on
// addr, with the servers it needs, its admin address (if any) and the TLS
// configuration of its clients (if any).
func upgradeArgs(t *testing.T, mode, addr, sock string) (args []string, admin string, tlsConf *tls.Config) {
	t.Helper()
	args = []string{"-mode", mode, "-listen", addr, "-upgrade-socket", sock, "-grace", "10s"}
	switch mode {
	case "http":
		a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
		admin = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		args = append(args, "-backends", a.Addr+","+b.Addr, "-admin", admin)
	case "tcp":
		e := testutil.EchoServer(t)
		args = append(args, "-backends", e.Addr)
	case "config":
		// The configuration-file mode: one HTTP frontend on the port.
		a := testutil.HTTPBackend(t, "a")
		_, bport, _ := net.SplitHostPort(a.Addr)
		_, port, _ := net.SplitHostPort(addr)
		file := filepath.Join(t.TempDir(), "lb.json")
		doc := fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "web", "forward_protocol": "http", "forward_port": %s, "pool": ["127.0.0.1"]}],
		  "frontends": [{"id": "f", "inbound_port": %s, "backend_id": "web"}]}`, bport, port)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		admin = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		args = []string{"-config", file, "-ip", "127.0.0.1", "-upgrade-socket", sock, "-grace", "10s", "-admin", admin}
	case "https-http3":
		ca := testutil.NewCA(t)
		cert, key := testutil.WritePEM(t, ca.Leaf(t, "localhost"))
		a := testutil.HTTPBackend(t, "a")
		args[1] = "https"
		args = append(args, "-http3", "-cert", cert, "-key", key, "-backends", a.Addr)
		tlsConf = &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	}
	return args, admin, tlsConf
}

func testUpgrade(t *testing.T, bin, mode string) {
	if mode == "https-http3" {
		t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	sock := filepath.Join(t.TempDir(), "upgrade.sock")
	var loads []*load
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Stop the load before the processes (cleanups run last first).
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	// The free port may be taken before lbproxy binds it: then try another.
	var p1 *proc
	var addr, admin string
	var args []string
	var tlsConf *tls.Config
	start := time.Now()
	tried := map[string]bool{}
	for attempt := 1; ; attempt++ {
		for i := 0; i < 10 && (addr == "" || tried[addr]); i++ {
			addr = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		}
		tried[addr] = true
		args, admin, tlsConf = upgradeArgs(t, mode, addr, sock)
		var ok bool
		if p1, ok = tryStartProc(t, bin, args...); ok {
			break
		}
		if attempt == 3 {
			t.Fatalf("lbproxy %v did not start in 3 attempts", args)
		}
	}
	switch mode {
	case "http", "config":
		keepAlive := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		t.Cleanup(keepAlive.CloseIdleConnections)
		loads = []*load{{name: "HTTP keep-alive"}, {name: "HTTP new connections"}}
		runLoad(&wg, stop, loads[0], httpGet(keepAlive, "http://"+addr+"/"))
		runLoad(&wg, stop, loads[1], httpGet(fresh, "http://"+addr+"/"))
	case "tcp":
		loads = []*load{{name: "TCP echo streams"}, {name: "TCP echo streams (2)"}}
		runLoad(&wg, stop, loads[0], echoStream(addr))
		runLoad(&wg, stop, loads[1], echoStream(addr))
	case "https-http3":
		// Each transport its own configuration: net/http's sets its ALPN.
		h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: true}}
		h3 := &qhttp3.Transport{TLSClientConfig: tlsConf.Clone()}
		t.Cleanup(func() { h2.CloseIdleConnections(); h3.Close() })
		loads = []*load{{name: "HTTPS keep-alive"}, {name: "HTTP/3", tolerant: true}}
		runLoad(&wg, stop, loads[0], httpGet(h2, "https://"+addr+"/"))
		runLoad(&wg, stop, loads[1], httpGet(&http.Client{Timeout: 10 * time.Second, Transport: h3}, "https://"+addr+"/"))
	}
	progress := func(what string) {
		t.Helper()
		base := make([]int64, len(loads))
		for i, l := range loads {
			base[i] = l.ok.Load()
		}
		testutil.Eventually(t, what, func() bool {
			for i, l := range loads {
				if l.ok.Load() < base[i]+20 {
					return false
				}
			}
			return true
		})
	}
	progress("load through the first process")

	// Upgrade 1: the same command again.
	t1 := time.Now()
	p2 := startProc(t, bin, args...)
	p1.waitExit(t)
	handover1 := time.Since(t1)
	if mode == "https-http3" && !strings.Contains(p2.start, "udp "+addr) {
		t.Errorf("the second process did not take the UDP socket: %q", p2.start)
	}
	progress("load through the second process")

	// Upgrade 2: a new binary in place of the old, and SIGUSR2.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	if err := p2.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	line := p2.waitLine(t, "takes over")
	pid3, err := strconv.Atoi(strings.Fields(strings.TrimPrefix(line, "lbproxy: pid "))[0])
	if err != nil || pid3 == p2.cmd.Process.Pid {
		t.Fatalf("the new process's pid in %q: %v", line, err)
	}
	t.Cleanup(func() { syscall.Kill(pid3, syscall.SIGKILL) }) // on failures before its stop
	p2.waitExit(t)
	handover2 := time.Since(t2)
	if mode == "https-http3" && !strings.Contains(line, "udp "+addr) {
		t.Errorf("the third process did not take the UDP socket: %q", line)
	}
	progress("load through the third process")
	if admin != "" {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			t.Fatalf("admin endpoint after two upgrades: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz after two upgrades: %s", resp.Status)
		}
	}
	if mode == "https-http3" {
		// A new HTTP/3 connection reaches the third process.
		h3 := &qhttp3.Transport{TLSClientConfig: tlsConf.Clone()}
		defer h3.Close()
		if err := httpGet(&http.Client{Timeout: 10 * time.Second, Transport: h3}, "https://"+addr+"/")(); err != nil {
			t.Errorf("HTTP/3 after two upgrades: %v", err)
		}
	}
	close(stop)
	wg.Wait()

	// The third process, not lbproxy's child, stops on SIGTERM; the
	// output pipe closes when it has exited.
	if err := syscall.Kill(pid3, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(20 * time.Second)
	for drained := false; !drained; {
		select {
		case _, ok := <-p2.lines:
			drained = !ok
		case <-timeout:
			syscall.Kill(pid3, syscall.SIGKILL)
			t.Fatal("the third process did not stop on SIGTERM")
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the upgrade socket outlived the last process: %v", err)
	}

	for _, l := range loads {
		t.Logf("%s: %d ok, %d failed, %d refused", l.name, l.ok.Load(), l.failed.Load(), l.ref.Load())
		if l.failed.Load() > 0 && !l.tolerant {
			t.Errorf("%s: %d failures (%d refused), the first: %v", l.name, l.failed.Load(), l.ref.Load(), l.firstErr)
		}
	}
	t.Logf("%s: old process exited %v after the second started, %v after SIGUSR2; %v in all",
		mode, handover1.Round(time.Millisecond), handover2.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// testFailedSuccessor: a new process that cannot serve (a bad flag) leaves
// the running one serving and upgradable.
func testFailedSuccessor(t *testing.T, bin string) {
	be := testutil.HTTPBackend(t, "a")
	sock := filepath.Join(t.TempDir(), "upgrade.sock")
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	args := []string{"-listen", addr, "-upgrade-socket", sock, "-grace", "5s", "-backends", be.Addr}
	p1 := startProc(t, bin, args...)
	// The same sockets, and a certificate file that does not exist.
	bad := exec.Command(bin, append(args, "-mode", "https", "-cert", "/nonexistent.pem", "-key", "/nonexistent.key")...)
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("lbproxy with a missing certificate started:\n%s", out)
	}
	select {
	case <-p1.exited:
		t.Fatalf("the running process exited after a failed upgrade: %v", p1.err)
	default:
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if err := httpGet(c, "http://"+addr+"/")(); err != nil {
		t.Fatalf("after a failed upgrade: %v", err)
	}
	startProc(t, bin, args...)
	p1.waitExit(t)
	if err := httpGet(c, "http://"+addr+"/")(); err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
}

// TestAcceptProbeShared: while another process accepts on the socket too
// (an upgrade), a check connection it took is forgotten when the check
// gives up, so that a later client from the same source port is not
// taken for it and closed; otherwise it stays pending, for the frontend to
// drop when it accepts it late.
func TestAcceptProbeShared(t *testing.T) {
	for _, shared := range []bool{false, true} {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		probe := &acceptProbe{Listener: raw, shared: func() bool { return shared }}
		// The other process: it accepts the check's connection.
		stolen := make(chan net.Conn, 1)
		go func() {
			c, err := raw.Accept()
			if err == nil {
				stolen <- c
			}
		}()
		err = probe.check(context.Background(), 200*time.Millisecond)
		if err == nil {
			t.Fatalf("shared %v: the check passed though its connection was taken elsewhere", shared)
		}
		select {
		case c := <-stolen:
			c.Close()
		case <-time.After(5 * time.Second):
			t.Fatal("the check's connection never reached the other accept")
		}
		probe.mu.Lock()
		pending := len(probe.pending)
		probe.mu.Unlock()
		if want := map[bool]int{false: 1, true: 0}[shared]; pending != want || int(probe.active.Load()) != want {
			t.Errorf("shared %v: %d pending (active %d), want %d", shared, pending, probe.active.Load(), want)
		}
		raw.Close()
	}
}

// TestTrackFresh: the drain after an upgrade waits for connections whose
// first request has not been read; trackFresh counts them, over HTTP/1.1
// on TCP and on a unix socket (each connection, though all have the same
// client address), and settle returns once they are served, or at
// settleMax, and not before acceptLag after the last accept. A silent
// connection accepted more than settleMax before is not waited for.
func TestTrackFresh(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) { testTrackFresh(t, network) })
	}
}

func testTrackFresh(t *testing.T, network string) {
	testutil.CheckLeaks(t)
	dir, err := os.MkdirTemp("", "fresh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s := &sockets{up: &upgrade.Upgrader{Path: filepath.Join(dir, "s")}}
	defer s.close()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(dir, "http")
	}
	ln, err := s.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make(chan struct{}, 8)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
			reqs <- struct{}{}
		}),
		ConnState: s.trackFresh(nil)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(c net.Conn) {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reqs:
		case <-time.After(5 * time.Second):
			t.Fatal("request not served")
		}
	}

	// A connection served is not counted.
	idle := dial()
	defer idle.Close()
	get(idle)
	if n := s.fresh.Load(); n != 0 {
		t.Fatalf("%d connections counted once served", n)
	}

	c1, c2 := dial(), dial()
	defer c1.Close()
	defer c2.Close()
	testutil.Eventually(t, "both silent connections counted", func() bool { return s.fresh.Load() == 2 })
	get(idle) // its next request changes nothing
	if n := s.fresh.Load(); n != 2 {
		t.Fatalf("%d connections counted, want 2", n)
	}
	get(c1)
	testutil.Eventually(t, "the served connection uncounted", func() bool { return s.fresh.Load() == 1 })
	settled := make(chan struct{})
	go func() { s.settle(context.Background()); close(settled) }()
	select {
	case <-settled:
		t.Fatal("settle returned while a connection waits for its first request")
	case <-time.After(100 * time.Millisecond):
	}
	get(c2)
	select {
	case <-settled:
	case <-time.After(settleMax + 5*time.Second):
		t.Fatal("settle did not return once the request was read")
	}
	if n := s.fresh.Load(); n != 0 {
		t.Fatalf("%d connections still counted", n)
	}

	// A connection just accepted may not have reached its server yet.
	s.lastAccept.Store(time.Now().UnixNano())
	began := time.Now()
	s.settle(context.Background())
	if d := time.Since(began); d < acceptLag {
		t.Fatalf("settle returned %v after an accept, before acceptLag", d)
	}

	// A silent connection accepted long before is not waited for.
	c3 := dial()
	defer c3.Close()
	testutil.Eventually(t, "a silent connection counted", func() bool { return s.fresh.Load() == 1 })
	now := time.Now()
	if !s.waiting(now.Add(-settleMax).UnixNano()) {
		t.Fatal("a silent connection just accepted is not waited for")
	}
	s.freshMu.Lock()
	for c := range s.freshConn {
		s.freshConn[c] = now.Add(-2 * settleMax).UnixNano()
	}
	s.freshMu.Unlock()
	if s.waiting(now.Add(-settleMax).UnixNano()) {
		t.Fatal("a silent connection accepted before settleMax is waited for")
	}
}

// TestTrackFreshHTTP2: an HTTP/2 connection (lb.ConfigureHTTP2, over TLS
// and h2c with prior knowledge), whose states after StateNew come with
// the server's wrapper of the accepted connection, is uncounted once
// served: settle does not wait for it until settleMax. A silent TLS
// connection stays counted.
func TestTrackFreshHTTP2(t *testing.T) {
	for _, mode := range []string{"tls", "h2c"} {
		t.Run(mode, func(t *testing.T) { testTrackFreshHTTP2(t, mode == "tls") })
	}
}

func testTrackFreshHTTP2(t *testing.T, tlsOn bool) {
	testutil.CheckLeaks(t)
	dir, err := os.MkdirTemp("", "fresh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s := &sockets{up: &upgrade.Upgrader{Path: filepath.Join(dir, "s")}}
	defer s.close()
	ln, err := s.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
		ErrorLog:  log.New(io.Discard, "", 0), // the silent connection's handshake error
		ConnState: s.trackFresh(nil)}
	ca := testutil.NewCA(t)
	if tlsOn {
		srv.TLSConfig = ca.ServerConfig(t, "localhost")
	}
	if err := lb.ConfigureHTTP2(srv, lb.HTTP2Options{Cleartext: !tlsOn}); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		if tlsOn {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	defer func() {
		srv.Close()
		<-served
	}()

	tr := &http.Transport{}
	url := "http://" + ln.Addr().String() + "/"
	if tlsOn {
		tr.TLSClientConfig = ca.ClientConfig("localhost")
		tr.ForceAttemptHTTP2 = true
		url = "https://" + ln.Addr().String() + "/"
	} else {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("served over %q, want HTTP/2.0", body)
	}
	// The connection stays open, idle: it no longer counts.
	testutil.Eventually(t, "the served HTTP/2 connection uncounted", func() bool { return s.fresh.Load() == 0 })
	if !tlsOn {
		return
	}
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	testutil.Eventually(t, "a silent connection counted", func() bool { return s.fresh.Load() == 1 })
}

// BenchmarkTrackFresh measures what -upgrade-socket adds to each HTTP
// connection: trackFresh's StateNew and first StateActive, against the
// hook without -upgrade-socket (none).
func BenchmarkTrackFresh(b *testing.B) {
	for _, upgrading := range []bool{false, true} {
		name := map[bool]string{false: "none", true: "upgrade-socket"}[upgrading]
		b.Run(name, func(b *testing.B) {
			s := &sockets{}
			if upgrading {
				s.up = &upgrade.Upgrader{Path: filepath.Join(b.TempDir(), "s")}
			}
			next := func(net.Conn, http.ConnState) {}
			hook := s.trackFresh(next)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, peer := net.Pipe()
				defer c.Close()
				defer peer.Close()
				for pb.Next() {
					hook(c, http.StateNew)
					hook(c, http.StateActive)
				}
			})
		})
	}
}
