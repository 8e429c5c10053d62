//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// The test network: five namespaces, four of them joined by veth pairs to
// a bridge in the fifth. The addresses exist only inside them.
const (
	subnetBits = 24
	lb1Addr    = "10.213.0.11"
	lb2Addr    = "10.213.0.12"
	clientAddr = "10.213.0.21"
	serverAddr = "10.213.0.31"
	vip        = "10.213.0.100"
	serverPort = "8001"
	adminAddr  = "127.0.0.1:9100" // in each load balancer's namespace
	// moveBound is the longest a dead or hung lbproxy may keep the
	// virtual IP. The configuration's checks find a dead one within a
	// second and a hung one within 2.4 s; the peer then waits its skew
	// (0.03 s) and sends gratuitous ARPs.
	moveBound = 3 * time.Second
)

// Client mode: the test binary run with clientEnv set to a URL is the
// client, in the client namespace (TestMain).
const (
	clientEnv      = "LBKIT_HA_CLIENT_URL"
	clientInterval = 50 * time.Millisecond
	clientTimeout  = 500 * time.Millisecond
	clientMax      = 1600             // requests, at most
	clientDeadline = 90 * time.Second // and at most this long
)

func TestMain(m *testing.M) {
	if url := os.Getenv(clientEnv); url != "" {
		os.Exit(runClient(url))
	}
	os.Exit(m.Run())
}

// runClient sends a GET to url every clientInterval, each with its own
// connection and clientTimeout, and prints a line per request:
// "ok|err START_NS END_NS DETAIL". It stops after clientMax requests,
// clientDeadline, or when its standard input closes.
func runClient(url string) int {
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	c := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	out := bufio.NewWriter(os.Stdout)
	tick := time.NewTicker(clientInterval)
	defer tick.Stop()
	deadline := time.Now().Add(clientDeadline)
	for range clientMax {
		start := time.Now()
		status, detail := "ok", ""
		resp, err := c.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("status %d", resp.StatusCode)
			default:
				detail, _, _ = strings.Cut(string(body), " (")
			}
		}
		if err != nil {
			status, detail = "err", err.Error()
		}
		fmt.Fprintf(out, "%s %d %d %s\n", status, start.UnixNano(), time.Now().UnixNano(), strings.ReplaceAll(detail, "\n", " "))
		out.Flush()
		if time.Now().After(deadline) {
			return 0
		}
		select {
		case <-stop:
			return 0
		case <-tick.C:
		}
	}
	return 0
}

// result is one request of the client.
type result struct {
	ok         bool
	start, end time.Time
	detail     string
}

// results collects the client's lines as they come.
type results struct {
	mu      sync.Mutex
	rs      []result
	changed chan struct{} // closed and replaced at every line and at the end
	ended   bool
	partial []byte // the start of a line
}

// Write parses the client's lines; a line it cannot parse is a failed
// request with the line as its detail.
func (r *results) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.partial = append(r.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(r.partial[:i]))
		r.partial = r.partial[i+1:]
	}
	r.mu.Unlock()
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		res := result{detail: l}
		if len(f) == 4 {
			start, err1 := strconv.ParseInt(f[1], 10, 64)
			end, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				res = result{ok: f[0] == "ok", start: time.Unix(0, start), end: time.Unix(0, end), detail: f[3]}
			}
		}
		r.add(res, false)
	}
	return len(p), nil
}

func (r *results) add(res result, ended bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ended {
		r.rs = append(r.rs, res)
	}
	r.ended = r.ended || ended
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait waits until cond holds for the results, up to timeout; what names
// the condition in the failure.
func (r *results) wait(t *testing.T, what string, timeout time.Duration, cond func([]result) bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok, ended, changed := cond(r.rs), r.ended, r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		if ended {
			t.Fatalf("the client ended before %s", what)
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// since returns the results of requests started at or after from.
func (r *results) since(from time.Time) []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []result
	for _, res := range r.rs {
		if !res.start.Before(from) {
			out = append(out, res)
		}
	}
	return out
}

// okAfter reports a condition: n successful requests started after from.
func okAfter(from time.Time, n int) func([]result) bool {
	return func(rs []result) bool {
		for _, res := range rs {
			if res.ok && res.start.After(from) {
				if n--; n <= 0 {
					return true
				}
			}
		}
		return false
	}
}

// figures are what a scenario measured.
type figures struct {
	failed, total int
	// outage is the time from the end of the last successful request
	// before the first failed one to the end of the first successful
	// one after the last failed one; without failures, the longest time
	// between the ends of two successful requests.
	outage time.Duration
	errors map[string]int // the failures' errors, without addresses and ports
	// failedAt are the starts of the failed requests, from the window's.
	failedAt []time.Duration
}

// measure computes the figures of the requests that started in [from, to),
// with the last success before from as the starting point.
func (r *results) measure(from, to time.Time) figures {
	r.mu.Lock()
	defer r.mu.Unlock()
	var f figures
	var lastOK time.Time
	var firstFail, lastFail int = -1, -1
	var in []result
	for _, res := range r.rs {
		switch {
		case res.start.Before(from):
			if res.ok {
				lastOK = res.end
			}
		case res.start.Before(to):
			in = append(in, res)
		}
	}
	f.errors = map[string]int{}
	for i, res := range in {
		f.total++
		if !res.ok {
			f.failed++
			f.errors[errorKind(res.detail)]++
			f.failedAt = append(f.failedAt, res.start.Sub(from).Round(time.Millisecond))
			if firstFail < 0 {
				firstFail = i
			}
			lastFail = i
		}
	}
	if firstFail < 0 {
		prev := lastOK
		for _, res := range in {
			if !prev.IsZero() {
				f.outage = max(f.outage, res.end.Sub(prev))
			}
			prev = res.end
		}
		return f
	}
	before := lastOK
	for _, res := range in[:firstFail] {
		if res.ok {
			before = res.end
		}
	}
	for _, res := range in[lastFail+1:] {
		if res.ok {
			f.outage = res.end.Sub(before)
			break
		}
	}
	return f
}

func (f figures) String() string {
	return fmt.Sprintf("outage %v, %d of %d requests failed", f.outage.Round(time.Millisecond), f.failed, f.total)
}

// errorKind is the end of a client error, after its last ": ", which
// holds no port number: "connection refused", "i/o timeout", ...
func errorKind(detail string) string {
	if strings.Contains(detail, "Client.Timeout") {
		return "timeout"
	}
	if i := strings.LastIndex(detail, ": "); i >= 0 {
		detail = detail[i+2:]
	}
	return detail
}

// lbNode is one load balancer: its namespace, lbproxy and keepalived.
type lbNode struct {
	name, ns, addr string
	dir            string // its configuration, logs and pid files
	proxy          *proc
	keepalived     *proc
	notifyLog      string
	vip            *vipEvents // additions of the virtual IP to its interface
}

// env is the test network and its processes.
type env struct {
	t       *testing.T
	ipBin   string
	prefix  string // of the namespaces' names
	lbproxy string // the binary
	lbs     [2]*lbNode
}

// ns returns the name of the namespace called short.
func (e *env) ns(short string) string { return e.prefix + short }

// ip runs the ip command with args, failing the test on error.
func (e *env) ip(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(e.ipBin, args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// holds reports whether the namespace ns has the virtual IP.
func (e *env) holds(ns string) bool {
	out, err := exec.Command(e.ipBin, "-n", ns, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		e.t.Errorf("ip -n %s addr: %v: %s", ns, err, out)
		return false
	}
	return strings.Contains(string(out), " "+vip+"/")
}

// vipEvents records when the virtual IP is added to a namespace's
// interfaces, from the lines of "ip -o monitor address" as they come:
// the kernel's own notifications, without polling.
type vipEvents struct {
	mu      sync.Mutex
	added   []time.Time
	partial []byte
	changed chan struct{} // closed and replaced at every event
}

func (v *vipEvents) Write(p []byte) (int, error) {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.partial = append(v.partial, p...)
	for {
		i := bytes.IndexByte(v.partial, '\n')
		if i < 0 {
			break
		}
		line := string(v.partial[:i])
		v.partial = v.partial[i+1:]
		if !strings.HasPrefix(line, "Deleted") && strings.Contains(line, " inet "+vip+"/") {
			v.added = append(v.added, now)
			close(v.changed)
			v.changed = make(chan struct{})
		}
	}
	return len(p), nil
}

// waitVIP waits until the virtual IP is added to node's interface at or
// after since, up to timeout, and returns when the notification came.
func (e *env) waitVIP(node *lbNode, since time.Time, timeout time.Duration) time.Time {
	e.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		node.vip.mu.Lock()
		added, changed := node.vip.added, node.vip.changed
		node.vip.mu.Unlock()
		for _, at := range added {
			if !at.Before(since) {
				return at
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			e.t.Fatalf("%s does not hold %s after %v; notify logs:\n%s", node.name, vip, timeout, e.notifyLogs())
		}
	}
}

// transitions returns the lines of node's notify log.
func (node *lbNode) transitions() []string {
	b, _ := os.ReadFile(node.notifyLog)
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (e *env) notifyLogs() string {
	var b strings.Builder
	for _, node := range e.lbs {
		fmt.Fprintf(&b, "%s: %s\n", node.name, strings.Join(node.transitions(), ", "))
	}
	return b.String()
}

// proc is a process started in a namespace.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   *watchedLog
	stdin io.WriteCloser // with startWith's stdout only
	done  chan struct{}  // closed when it has exited
	err   error          // its exit, once done is closed
}

// watchedLog keeps a process's output, in a file and in memory, and tells
// when a line holding a given text has come.
type watchedLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	file    *os.File
	changed chan struct{}
}

func (w *watchedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.file.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

// waitFor waits until the output holds text, up to timeout, or until the
// process exits.
func (p *proc) waitFor(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.log.mu.Lock()
		has, changed := bytes.Contains(p.log.buf.Bytes(), []byte(text)), p.log.changed
		p.log.mu.Unlock()
		if has {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q; its output:\n%s", p.name, p.err, text, p.output())
		case <-timer.C:
			t.Fatalf("%s did not print %q within %v; its output:\n%s", p.name, text, timeout, p.output())
		}
	}
}

func (p *proc) output() string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return p.log.buf.String()
}

// start runs args in the namespace ns, its output in dir/name.log, and
// stops it at the end of the test: SIGCONT and SIGTERM, then SIGKILL to
// its process group after 5 s.
func (e *env) start(ns, name, dir string, args ...string) *proc {
	e.t.Helper()
	return e.startWith(ns, name, dir, nil, nil, args...)
}

// startWith is start with extraEnv added to the environment, and the
// standard output also written to stdout when not nil; the process's
// standard input is then a pipe, p.stdin.
func (e *env) startWith(ns, name, dir string, extraEnv []string, stdout io.Writer, args ...string) *proc {
	e.t.Helper()
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { f.Close() })
	p := &proc{name: name, log: &watchedLog{file: f, changed: make(chan struct{})}, done: make(chan struct{})}
	p.cmd = exec.Command(e.ipBin, append([]string{"netns", "exec", ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if stdout != nil {
		p.cmd.Stdout = io.MultiWriter(p.log, stdout)
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			e.t.Fatal(err)
		}
	}
	p.cmd.Env = append(os.Environ(), extraEnv...)
	// Its own process group, killed with the test process if that dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() { p.stop(e.t) })
	return p
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling %s: %v", p.name, err)
	}
}

// stop ends the process if it runs: SIGCONT and SIGTERM, then SIGKILL to
// its process group after 5 s.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("%s did not stop on SIGTERM within 5 s; killing it", p.name)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill(t *testing.T) {
	p.signal(t, syscall.SIGKILL)
	<-p.done
}

// setup builds the network and starts the servers, both lbproxy and both
// keepalived; it returns once the master holds the virtual IP and the
// backup is BACKUP.
func setup(t *testing.T) *env {
	if os.Geteuid() != 0 {
		if testutil.InCI() {
			t.Fatal("the HA test needs root (network namespaces, keepalived)")
		}
		t.Skip("the HA test needs root (network namespaces, keepalived)")
	}
	e := &env{t: t, ipBin: testutil.LookBinary(t, "ip", "iproute2"), prefix: fmt.Sprintf("lbkha%d-", os.Getpid())}
	keepalived := testutil.LookBinary(t, "keepalived", "keepalived")
	curl := testutil.LookBinary(t, "curl", "curl")
	bash := testutil.LookBinary(t, "bash", "bash")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not found to build lbproxy: %v", err)
	}
	dir := t.TempDir()

	// The namespaces, removed at the end even on failure, after the
	// processes in them (cleanups run last-in first-out); then nothing
	// of ours may be left.
	names := []string{"br", "lb1", "lb2", "cli", "srv"}
	t.Cleanup(func() {
		for _, n := range names {
			exec.Command(e.ipBin, "netns", "del", e.ns(n)).Run()
		}
		out, _ := exec.Command(e.ipBin, "netns", "list").CombinedOutput()
		if strings.Contains(string(out), e.prefix) {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	if out, err := exec.Command(e.ipBin, "netns", "add", e.ns(names[0])).CombinedOutput(); err != nil {
		if testutil.InCI() {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Skipf("network namespaces unavailable: ip netns add: %v: %s", err, out)
	}
	for _, n := range names[1:] {
		e.ip("netns", "add", e.ns(n))
	}
	br := e.ns("br")
	e.ip("-n", br, "link", "add", "br0", "type", "bridge")
	e.ip("-n", br, "link", "set", "br0", "up")
	for _, h := range []struct{ short, addr string }{{"lb1", lb1Addr}, {"lb2", lb2Addr}, {"cli", clientAddr}, {"srv", serverAddr}} {
		ns := e.ns(h.short)
		e.ip("-n", br, "link", "add", h.short, "type", "veth", "peer", "name", "eth0", "netns", ns)
		e.ip("-n", br, "link", "set", h.short, "master", "br0", "up")
		e.ip("-n", ns, "addr", "add", h.addr+"/"+strconv.Itoa(subnetBits), "dev", "eth0")
		e.ip("-n", ns, "link", "set", "eth0", "up")
		e.ip("-n", ns, "link", "set", "lo", "up")
	}

	// lbproxy, built from this checkout.
	e.lbproxy = filepath.Join(dir, "lbproxy")
	if out, err := exec.Command(goBin, "build", "-o", e.lbproxy, "../lbproxy").CombinedOutput(); err != nil {
		t.Fatalf("go build lbproxy: %v: %s", err, out)
	}

	// The servers: lbproxy's demo backends (on the servers' loopback)
	// behind an lbproxy on the servers' address.
	srv := e.start(e.ns("srv"), "servers", dir, e.lbproxy, "-listen", serverAddr+":"+serverPort, "-grace", "1s")
	srv.waitFor(t, "lbproxy: http on", 10*time.Second)

	// Both lbproxy, on the virtual IP that neither holds yet.
	for i, addr := range []string{lb1Addr, lb2Addr} {
		node := &lbNode{name: fmt.Sprintf("lb%d", i+1), ns: e.ns(fmt.Sprintf("lb%d", i+1)), addr: addr}
		node.dir = filepath.Join(dir, node.name)
		if err := os.Mkdir(node.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		node.notifyLog = filepath.Join(node.dir, "notify.log")
		node.vip = &vipEvents{changed: make(chan struct{})}
		e.startWith(node.ns, "ip-monitor-"+node.name, node.dir, nil, node.vip, e.ipBin, "-o", "monitor", "address")
		e.lbs[i] = node
		e.startProxy(node)
	}

	// keepalived, the master first: both start as BACKUP with
	// nopreempt, and the first to win keeps the IP.
	for i, node := range e.lbs {
		p := params{
			Role:      []string{"master", "backup"}[i],
			Interface: "eth0",
			VIP:       netip.MustParsePrefix(vip + "/" + strconv.Itoa(subnetBits)),
			Self:      netip.MustParseAddr(node.addr),
			Peer:      netip.MustParseAddr(e.lbs[1-i].addr),
			Healthz:   "http://" + adminAddr + "/healthz",
			Curl:      curl,
			Bash:      bash,
			Notify:    filepath.Join(node.dir, "notify.sh"),
			NotifyLog: node.notifyLog,
		}
		conf, _, err := write(p, node.dir)
		if err != nil {
			t.Fatal(err)
		}
		node.keepalived = e.start(node.ns, "keepalived-"+node.name, node.dir, keepalived,
			"-n", "-l", "-D", "-P", "-f", conf,
			"-p", filepath.Join(node.dir, "keepalived.pid"), "-r", filepath.Join(node.dir, "vrrp.pid"))
		if i == 0 {
			// Polled: the monitor may have subscribed after the address came.
			e.waitState("lb1 holding "+vip, func() bool { return e.holds(node.ns) })
		}
	}
	e.waitState("lb2 in state BACKUP", func() bool { return hasState(e.lbs[1], "BACKUP", 0) })
	// keepalived reads past what it does not understand, with a warning
	// naming the line: the rendered configuration must have none.
	for _, node := range e.lbs {
		if out := node.keepalived.output(); strings.Contains(out, "keepalived.conf: Line ") {
			t.Errorf("keepalived on %s warns about its configuration:\n%s", node.name, out)
		}
	}
	return e
}

// startProxy starts node's lbproxy on the virtual IP with -freebind, and
// waits until it serves.
func (e *env) startProxy(node *lbNode) {
	e.t.Helper()
	node.proxy = e.start(node.ns, "lbproxy-"+node.name, node.dir, e.lbproxy,
		"-listen", vip+":80", "-freebind", "-admin", adminAddr, "-grace", "1s",
		"-backends", serverAddr+":"+serverPort)
	node.proxy.waitFor(e.t, "lbproxy: http on "+vip+":80", 10*time.Second)
}

// waitState polls the notify logs every 10 ms until cond holds, and fails
// the test if it does not within 10 s (rise takes 2 s, more on a loaded
// host); what names the condition.
func (e *env) waitState(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; notify logs:\n%s", what, e.notifyLogs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastState returns the state node's notify script logged last.
func lastState(node *lbNode) string {
	tr := node.transitions()
	if len(tr) == 0 {
		return ""
	}
	f := strings.Split(tr[len(tr)-1], "_")
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// hasState reports whether node's notify log has state at or after line
// number from.
func hasState(node *lbNode, state string, from int) bool {
	tr := node.transitions()
	for _, l := range tr[min(from, len(tr)):] {
		if strings.Contains(l, "_"+state+"_") {
			return true
		}
	}
	return false
}

// TestHA runs a master/backup pair of lbproxy under keepalived with the
// configuration main renders, a client sending a request to the virtual
// IP every 50 ms, and: kills the master's lbproxy (the IP moves), starts
// it again (the IP stays, nopreempt), stalls the new holder's lbproxy for
// 1 s (the IP stays), then hangs it (the IP moves back). Both lbproxy
// start before their node holds the IP (-freebind).
func TestHA(t *testing.T) {
	e := setup(t)
	lb1, lb2 := e.lbs[0], e.lbs[1]

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rs := &results{changed: make(chan struct{})}
	client := e.startWith(e.ns("cli"), "client", t.TempDir(), []string{clientEnv + "=http://" + vip + "/"}, rs, self)
	go func() {
		<-client.done
		rs.add(result{}, true)
	}()
	t.Cleanup(func() { client.stdin.Close() })
	rs.wait(t, "10 answers through lb1", 10*time.Second, okAfter(time.Time{}, 10))
	// scripts/ha.sh collects these lines.
	logFigures := func(name string, f figures, extra string) {
		t.Logf("figure %s: %v%s", name, f, extra)
		if len(f.errors) > 0 {
			t.Logf("  %s: %v, started from %v to %v after the scenario's start", name, f.errors, f.failedAt[0], f.failedAt[len(f.failedAt)-1])
		}
	}

	// 1. The master's lbproxy dies: lb1 fails its checks, goes FAULT and
	// hands the IP to lb2, whose lbproxy has listened on it all along.
	mark := len(lb2.transitions())
	t0 := time.Now()
	lb1.proxy.kill(t)
	moved := e.waitVIP(lb2, t0, 2*moveBound).Sub(t0)
	if moved > moveBound {
		t.Errorf("kill -9: the IP moved after %v, want within %v", moved, moveBound)
	}
	if e.holds(lb1.ns) {
		t.Errorf("kill -9: lb1 still holds %s once lb2 does", vip)
	}
	e.waitState("lb2's notify script logging MASTER", func() bool { return hasState(lb2, "MASTER", mark) })
	rs.wait(t, "10 answers through lb2", 10*time.Second, okAfter(time.Now(), 10))
	logFigures("kill-9", rs.measure(t0, time.Now()), fmt.Sprintf(", IP moved after %v", moved.Round(time.Millisecond)))

	// 2. lb1's lbproxy comes back: lb1 passes its checks again and goes
	// BACKUP; with nopreempt the IP stays on lb2 and nothing fails.
	mark1, mark2 := len(lb1.transitions()), len(lb2.transitions())
	t1 := time.Now()
	e.startProxy(lb1)
	e.waitState("lb1 in state BACKUP again", func() bool { return hasState(lb1, "BACKUP", mark1) })
	backup := time.Now()
	// A preempting master would take the IP at the next advert (0.5 s):
	// watch for 1.5 s of answers.
	rs.wait(t, "answers for 1.5 s after lb1 is BACKUP", 10*time.Second, okAfter(backup.Add(1500*time.Millisecond), 1))
	f := rs.measure(t1, time.Now())
	logFigures("restart", f, fmt.Sprintf(", lb1 BACKUP %v after its lbproxy restarted", backup.Sub(t1).Round(time.Millisecond)))
	// The IP stays: lb2 keeps MASTER, so nothing fails because of lb1's
	// return (requests that fail all the same, with the IP in place, are
	// the host's load and show in the figures).
	if !e.holds(lb2.ns) || e.holds(lb1.ns) {
		t.Errorf("restart: the IP moved (nopreempt): lb1 holds %v, lb2 holds %v", e.holds(lb1.ns), e.holds(lb2.ns))
	}
	if tr := lb2.transitions(); len(tr) != mark2 {
		t.Errorf("restart: lb2 changed state (nopreempt):\n%s", e.notifyLogs())
	}

	// 3. lb2's lbproxy stalls for 1 s (SIGSTOP, SIGCONT): the requests
	// of that second fail, but not two checks in a row: the IP stays.
	mark2 = len(lb2.transitions())
	t2 := time.Now()
	lb2.proxy.signal(t, syscall.SIGSTOP)
	time.Sleep(time.Second) // the stall itself
	lb2.proxy.signal(t, syscall.SIGCONT)
	// A move would come within moveBound of the stall's start.
	rs.wait(t, "answers for 3 s after the stall began", 10*time.Second, okAfter(t2.Add(moveBound), 1))
	logFigures("stall-1s", rs.measure(t2, time.Now()), "")
	if !e.holds(lb2.ns) || e.holds(lb1.ns) {
		t.Errorf("1 s stall: the IP moved: lb1 holds %v, lb2 holds %v", e.holds(lb1.ns), e.holds(lb2.ns))
	}
	if tr := lb2.transitions(); len(tr) != mark2 {
		t.Errorf("1 s stall: lb2 changed state:\n%s", e.notifyLogs())
	}

	// 4. lb2's lbproxy hangs (SIGSTOP for good): its checks time out,
	// lb2 goes FAULT and the IP moves back to lb1.
	// lb1 must be BACKUP to take over: on a loaded host its own checks
	// may have failed meanwhile.
	e.waitState("lb1 in state BACKUP", func() bool { return lastState(lb1) == "BACKUP" })
	mark1 = len(lb1.transitions())
	t3 := time.Now()
	lb2.proxy.signal(t, syscall.SIGSTOP)
	moved = e.waitVIP(lb1, t3, 2*moveBound).Sub(t3)
	if moved > moveBound {
		t.Errorf("hang: the IP moved after %v, want within %v", moved, moveBound)
	}
	e.waitState("lb1's notify script logging MASTER", func() bool { return hasState(lb1, "MASTER", mark1) })
	rs.wait(t, "10 answers through lb1 again", 10*time.Second, okAfter(time.Now(), 10))
	logFigures("hang", rs.measure(t3, time.Now()), fmt.Sprintf(", IP moved after %v", moved.Round(time.Millisecond)))
	lb2.proxy.signal(t, syscall.SIGCONT)

	client.stdin.Close()
	<-client.done
	if client.err != nil {
		t.Errorf("client: %v", client.err)
	}
	t.Logf("transitions:\n%s", e.notifyLogs())
}
