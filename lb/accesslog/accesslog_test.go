package accesslog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serveProxy serves proxy on a loopback listener until the test ends.
func serveProxy(t *testing.T, proxy *lb.ReverseProxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Serve(ctx, srv, ln, time.Second, proxy) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func record() lb.AccessRecord {
	return lb.AccessRecord{
		Time:     time.Date(2026, 12, 2, 9, 53, 16, 123456789, time.UTC),
		Client:   netip.MustParseAddrPort("127.0.0.1:41234"),
		Frontend: "fe", Backend: "web", Server: "s1", HTTP: true,
		Tw: time.Millisecond, Tc: 2 * time.Millisecond, Tr: 3 * time.Millisecond, Ta: 7 * time.Millisecond, Tt: -1,
		Status: 200, BytesIn: 5, BytesOut: 1234, Retries: 1, Redispatch: true, Termination: "--",
		ActiveConns: 3, FrontendConns: 3, BackendConns: 4, ServerConns: 1, ServerQueue: 2, BackendQueue: 5,
		Method: "GET", URI: "/a b\"c", Proto: "HTTP/1.1", Host: "example.com", RequestID: "abc",
	}
}

func TestAppendHAProxy(t *testing.T) {
	r := record()
	got := string(accesslog.AppendHAProxy(nil, &r))
	want := `127.0.0.1:41234 [02/Dec/2026:09:53:16.123] fe web/s1 0/1/2/3/7 200 1234 - - ---- 3/3/4/1/+1 2/5 "GET /a#20b#22c HTTP/1.1"`
	if got != want {
		t.Errorf("httplog\n got %s\nwant %s", got, want)
	}
	// Cookie flags: a valid pin, then a pin moved off an unusable server.
	for _, c := range []struct {
		pinned, moved bool
		flags         string
	}{{true, false, "--VN"}, {false, true, "--DI"}} {
		r := record()
		r.StickyPinned, r.StickyMoved = c.pinned, c.moved
		if got := string(accesslog.AppendHAProxy(nil, &r)); !strings.Contains(got, " - - "+c.flags+" 3/3/4/1/+1 2/5 ") {
			t.Errorf("pinned %v moved %v: %s, want state %s", c.pinned, c.moved, got, c.flags)
		}
	}
	r = lb.AccessRecord{Time: r.Time, Client: netip.MustParseAddrPort("[::1]:5"), Frontend: "tcp", Backend: "be",
		Server: lb.NoServerName, Tw: -1, Tc: -1, Tt: 1500 * time.Millisecond, Termination: "SC"}
	got = string(accesslog.AppendHAProxy(nil, &r))
	want = `[::1]:5 [02/Dec/2026:09:53:16.123] tcp be/<NOSRV> -1/-1/1500 0 SC 0/0/0/0/0 0/0`
	if got != want {
		t.Errorf("tcplog\n got %s\nwant %s", got, want)
	}
}

// TestHalogReadsHAProxyFormat sends known traffic through a proxy that logs
// to a file, and checks what HAProxy's halog makes of the file.
func TestHalogReadsHAProxyFormat(t *testing.T) {
	halog := testutil.LookBinary(t, "halog", "haproxy")
	pool := &lb.Pool{Name: "web"}
	a, b := testutil.HTTPBackend(t, "a"), testutil.HTTPBackend(t, "b")
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}, {Name: "b", Addr: b.Addr}}))
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := os.Create(path)
	must(t, err)
	w := accesslog.NewWriter(accesslog.HAProxy(f), 0) // Close closes f
	var logged atomic.Int64
	count := lb.AccessLoggerFunc(func(r *lb.AccessRecord) { w.Log(r); logged.Add(1) })
	url := serveProxy(t, &lb.ReverseProxy{Name: "fe", Pool: pool, AccessLog: count})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for i := range 20 {
		path := "/"
		if i%4 == 3 {
			path = "/status?code=404"
		}
		resp, err := c.Get(url + path)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The record is written after the response: wait for all 20.
	deadline := time.Now().Add(10 * time.Second)
	for logged.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	must(t, w.Close())
	if w.Dropped() != 0 {
		t.Fatalf("%d records dropped", w.Dropped())
	}
	run := func(args ...string) string {
		t.Helper()
		in, err := os.Open(path)
		must(t, err)
		defer in.Close()
		// -s -4: the lines have no syslog header before the client address.
		cmd := exec.Command(halog, append([]string{"-s", "-4"}, args...)...)
		cmd.Stdin = in
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("halog %v: %v: %s", args, err, errb.String())
		}
		if !strings.Contains(errb.String(), " 0 parsing errors") && errb.Len() > 0 {
			t.Errorf("halog %v: %s", args, errb.String())
		}
		return out.String()
	}
	if got := strings.TrimSpace(run("-c")); got != "20" {
		t.Errorf("halog -c: %q, want 20", got)
	}
	srv := run("-srv")
	total := 0
	for _, name := range []string{"web/a", "web/b"} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) `).FindStringSubmatch(srv)
		if m == nil {
			t.Fatalf("halog -srv has no %s:\n%s", name, srv)
		}
		var n int
		fmt.Sscan(m[7], &n)
		if n != 10 { // round robin over two servers
			t.Errorf("halog -srv: %s served %d, want 10:\n%s", name, n, srv)
		}
		total += n
	}
	st := run("-st")
	if !regexp.MustCompile(`(?m)^200 15$`).MatchString(st) || !regexp.MustCompile(`(?m)^404 5$`).MatchString(st) {
		t.Errorf("halog -st:\n%s\nwant 15 200s and 5 404s", st)
	}
	if tc := run("-tc"); !regexp.MustCompile(`(?m)^-- 20$`).MatchString(tc) {
		t.Errorf("halog -tc:\n%s", tc)
	}
}

func TestSlogSink(t *testing.T) {
	var buf bytes.Buffer
	w := accesslog.NewWriter(accesslog.Slog(slog.NewJSONHandler(&buf, nil)), 0)
	r := record()
	w.Log(&r)
	must(t, w.Close())
	var m map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &m))
	want := map[string]any{"msg": "access", "level": "INFO", "client_ip": "127.0.0.1", "client_port": 41234.0,
		"frontend": "fe", "backend": "web", "server": "s1", "status": 200.0, "Tw": 1.0, "Tc": 2.0, "Tr": 3.0,
		"Ta": 7.0, "bytes_out": 1234.0, "bytes_in": 5.0, "retries": 1.0, "redispatch": true,
		"termination_state": "--", "sticky": false, "sticky_moved": false,
		"actconn": 3.0, "feconn": 3.0, "beconn": 4.0, "srv_conn": 1.0, "srv_queue": 2.0, "backend_queue": 5.0,
		"method": "GET", "host": "example.com", "request_id": "abc",
		"time": "2026-12-02T09:53:16.123456789Z"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, m[k], m[k], v)
		}
	}
}

// blockingSink blocks every write until released.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (s *blockingSink) WriteRecord(*lb.AccessRecord) error {
	<-s.release
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

func TestWriterDropsWhenSinkBlocks(t *testing.T) {
	testutil.CheckLeaks(t)
	sink := &blockingSink{release: make(chan struct{})}
	w := accesslog.NewWriter(sink, 8)
	r := record()
	start := time.Now()
	for range 1000 {
		w.Log(&r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 Logs to a blocked sink took %v", d)
	}
	// One record is in the sink's hands, 8 buffered.
	if got := w.Dropped(); got < 1000-9 || got > 1000-8 {
		t.Errorf("Dropped() = %d, want 991 or 992", got)
	}
	close(sink.release)
	must(t, w.Close())
	if got := uint64(sink.n) + w.Dropped(); got != 1000 {
		t.Errorf("written %d + dropped %d != 1000", sink.n, w.Dropped())
	}
	w.Log(&r)
	if w.Dropped() != 1000-uint64(sink.n)+1 {
		t.Errorf("Log after Close not counted as dropped")
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	for _, tt := range []struct {
		format string
		re     string
	}{
		{accesslog.RFC5424, `^<134>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d) myhost haproxy \d+ - - 127\.0\.0\.1:41234 \[02/Dec/2026:09:53:16\.123\] fe web/s1 `},
		{accesslog.RFC3164, `^<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d myhost haproxy\[\d+\]: 127\.0\.0\.1:41234 \[`},
	} {
		s, err := accesslog.DialSyslog("udp", pc.LocalAddr().String(),
			accesslog.SyslogOptions{Format: tt.format, Hostname: "myhost", App: "haproxy"})
		must(t, err)
		w := accesslog.NewWriter(accesslog.HAProxy(s), 0)
		r := record()
		w.Log(&r)
		must(t, w.Close())
		buf := make([]byte, 2048)
		n, _, err := pc.ReadFrom(buf)
		must(t, err)
		msg := string(buf[:n])
		if !regexp.MustCompile(tt.re).MatchString(msg) || strings.HasSuffix(msg, "\n") {
			t.Errorf("%s datagram %q does not match %s", tt.format, msg, tt.re)
		}
	}
}

func TestSyslogTCPOctetCounting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b strings.Builder
		io.Copy(&b, bufio.NewReader(c))
		got <- b.String()
	}()
	s, err := accesslog.DialSyslog("tcp", ln.Addr().String(), accesslog.SyslogOptions{Hostname: "h", App: "a"})
	must(t, err)
	s.Write([]byte("one\n"))
	s.Write([]byte("two"))
	must(t, s.Close())
	data := <-got
	for _, msg := range []string{"one", "two"} {
		var n int
		if _, err := fmt.Sscanf(data, "%d ", &n); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		i := strings.IndexByte(data, ' ') + 1
		frame := data[i : i+n]
		if !strings.HasPrefix(frame, "<134>1 ") || !strings.HasSuffix(frame, " h a "+fmt.Sprint(os.Getpid())+" - - "+msg) {
			t.Errorf("frame %q", frame)
		}
		data = data[i+n:]
	}
	if data != "" {
		t.Errorf("trailing %q", data)
	}
}

// TestHalogReadsSyslog checks the RFC 3164 messages as a syslog daemon
// stores them (the message without its <PRI>): halog reads them with its
// default header skip.
func TestHalogReadsSyslog(t *testing.T) {
	halog := testutil.LookBinary(t, "halog", "haproxy")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	s, err := accesslog.DialSyslog("udp", pc.LocalAddr().String(), accesslog.SyslogOptions{Format: accesslog.RFC3164})
	must(t, err)
	w := accesslog.NewWriter(accesslog.HAProxy(s), 0)
	for i := range 3 {
		r := record()
		r.Status = 200 + 100*i
		w.Log(&r)
	}
	must(t, w.Close())
	var file bytes.Buffer
	buf := make([]byte, 2048)
	for range 3 {
		n, _, err := pc.ReadFrom(buf)
		must(t, err)
		msg := string(buf[:n])
		file.WriteString(msg[strings.IndexByte(msg, '>')+1:] + "\n")
	}
	cmd := exec.Command(halog, "-st")
	cmd.Stdin = &file
	out, err := cmd.Output()
	must(t, err)
	for _, want := range []string{"200 1", "300 1", "400 1"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).Match(out) {
			t.Errorf("halog -st:\n%s\nwant %q", out, want)
		}
	}
}

func TestAppendHAProxyAllocs(t *testing.T) {
	r := record()
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = accesslog.AppendHAProxy(buf[:0], &r) }); n != 0 {
		t.Errorf("AppendHAProxy allocates %.0f times per record, want 0", n)
	}
}
