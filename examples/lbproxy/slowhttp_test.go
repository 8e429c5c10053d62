package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// slowLongEnv selects slowhttptest's own default test length (240 s) in
// TestLBProxySlowHTTP instead of the short one of the suite;
// scripts/slowhttptest.sh sets it.
const slowLongEnv = "LBKIT_SLOWHTTP_LONG"

// slowConns is the number of slow connections of each attack.
const slowConns = 1000

// slowAttack is one slowhttptest mode run against lbproxy.
type slowAttack struct {
	name string   // subtest name
	args []string // the mode's flags
	path string   // request target on the backend
	// short is the test length in the suite; long runs take
	// slowhttptest's default, 240 s.
	short time.Duration
	// silentClose is set when lbproxy's close reaches the tool only
	// later: the kernel aborts a connection whose response sat unread in
	// its buffers (TCP_USER_TIMEOUT, see lb.ReverseProxy.ConnState)
	// without a reset, and the tool learns of it when it next opens its
	// receive window. lbproxy's own open sessions show the close.
	silentClose bool
}

// slowAttacks are the three slow client attacks, each answered by one of
// lbproxy's default timeouts: slow headers by the 10 s header deadline,
// slow bodies by the minimum body data rate, slow readers of a large
// response by the client inactivity timeout.
var slowAttacks = []slowAttack{
	// Slowloris: a random header line every 10 s, never the blank line
	// that ends the header.
	{name: "slowloris", args: []string{"-H", "-i", "10"}, path: "/", short: 30 * time.Second},
	// R-U-Dead-Yet: a POST announcing 4096 bytes of body, then a few
	// random bytes of it every 10 s, to a handler that reads the whole
	// body first.
	{name: "slowbody", args: []string{"-B", "-i", "10", "-s", "4096"}, path: "/echo", short: 30 * time.Second},
	// Slow read: a 256 KiB response, more than the socket buffers between
	// lbproxy and the client hold, read 5 bytes a second through a receive
	// window of at most 512 bytes, which stalls lbproxy's writes.
	{name: "slowread", args: []string{"-X", "-n", "1", "-z", "5", "-w", "1", "-y", "512", "-k", "1"},
		path: "/size?n=262144", short: 90 * time.Second, silentClose: true},
}

// TestLBProxySlowHTTP runs slowhttptest's slow headers (-H), slow body
// (-B) and slow read (-X) attacks, 1000 connections each and all three at
// once, against lbproxy's HTTP frontend in its default configuration (one
// lbproxy and one real backend per attack), while a probe client sends
// legitimate requests. Every probe request must succeed within
// probeTimeout, and lbproxy must close every slow connection before the
// tool's test length ends: the tool then stops early with "No open
// connections left". lbproxy's /stats must have seen the attack's
// connections, so that the closes are lbproxy's and not refused or
// queued connects. The test logs the tool's per-second counts
// (closed, pending, connected) next to lbproxy's open sessions, and the
// probe's count and latency.
//
// In the suite each attack runs for a short length, opening 100
// connections a second (the three attacks together ramp up in 10 s); with
// LBKIT_SLOWHTTP_LONG=1 (scripts/slowhttptest.sh) for slowhttptest's
// default 240 s, at its default rate of 50 connections a second.
func TestLBProxySlowHTTP(t *testing.T) {
	bin := testutil.LookBinary(t, "slowhttptest", "slowhttptest")
	t.Logf("slowhttptest %s (%s)", toolVersion(bin, []string{"-h"}, `version ([0-9][^ \n]*)`), bin)
	testutil.CheckLeaks(t)
	long := os.Getenv(slowLongEnv) != ""
	for _, a := range slowAttacks {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			length, rate := a.short, 100
			if long {
				length, rate = 240*time.Second, 50
			}
			runSlowAttack(t, bin, a, length, rate)
		})
	}
}

// probeInterval is the time between two probe requests, and probeTimeout
// the bound each must answer within.
const (
	probeInterval = 200 * time.Millisecond
	probeTimeout  = 5 * time.Second
)

// runSlowAttack runs attack a against an lbproxy of its own for length,
// opening rate connections a second, and checks the outcome.
func runSlowAttack(t *testing.T, bin string, a slowAttack, length time.Duration, rate int) {
	be := testutil.HTTPBackend(t, "a")
	cfg := defaultConfig()
	cfg.backends = be.Addr
	r := startAdminRun(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), length+time.Minute)
	defer cancel()
	toolDone := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	var probe probeCount
	wg.Go(func() { probe.run(toolDone, "http://"+r.addr+"/", length+10*time.Second) })
	var stats sessionsTimeline
	wg.Go(func() { stats.run(toolDone, r.admin+"/stats", length+10*time.Second) })

	prefix := filepath.Join(t.TempDir(), a.name)
	args := append(slices.Clone(a.args),
		"-c", strconv.Itoa(slowConns), "-r", strconv.Itoa(rate), "-l", strconv.Itoa(int(length/time.Second)),
		"-p", "5", "-g", "-o", prefix, "-u", "http://"+r.addr+a.path)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	close(toolDone)
	wg.Wait()
	summary := ansi.ReplaceAllString(out.String(), "")
	if err != nil {
		t.Fatalf("slowhttptest %q: %v\n%s", args, err, summary)
	}
	rows, err := readSlowCSV(prefix + ".csv")
	if err != nil {
		t.Fatalf("%v\n%s", err, summary)
	}
	exit := "(none)"
	if m := exitStatus.FindStringSubmatch(summary); m != nil {
		exit = m[1]
	}

	// The figures: the tool's per-second counts next to lbproxy's open
	// sessions, every 5 s and at the end.
	t.Logf("%s: %d connections at %d/s for %v; tool ran %v, exit status %q", a.name, slowConns, rate, length, elapsed.Round(time.Second), exit)
	t.Logf("%s: second  closed pending connected available  lbproxy-sessions", a.name)
	for i, row := range rows {
		if i%5 == 0 || i == len(rows)-1 {
			t.Logf("%s: %6d  %6d  %7d  %9d  %9v  %8d", a.name, row.sec, row.closed, row.pending, row.connected, row.available, stats.at(time.Duration(row.sec)*time.Second))
		}
	}
	t.Logf("%s: probe: %s", a.name, probe.String())

	// Every legitimate request was answered in time.
	probe.mu.Lock()
	if probe.failed > 0 || probe.ok == 0 {
		t.Errorf("%s: probe: %d of %d requests failed (first errors: %q), want all to succeed within %v",
			a.name, probe.failed, probe.ok+probe.failed, probe.errs, probeTimeout)
	}
	probe.mu.Unlock()

	// The attack took hold: the tool connected (nearly) all its
	// connections, and lbproxy accepted them.
	opened, last := 0, rows[len(rows)-1]
	for _, row := range rows {
		opened = max(opened, row.closed+row.connected)
	}
	if opened < slowConns*9/10 {
		t.Errorf("%s: %d of %d connections opened, want at least 90%%", a.name, opened, slowConns)
	}
	probe.mu.Lock()
	probes := probe.ok + probe.failed // on connections of their own
	probe.mu.Unlock()
	if n := stats.accepted() - probes; n < slowConns*9/10 {
		t.Errorf("%s: lbproxy accepted %d connections besides the probe's, want at least %d", a.name, n, slowConns*9/10)
	}
	// lbproxy closed them all before the tool's end: slowhttptest stops
	// early when no connection is left open or pending (its last CSV row
	// may be written just before the last closes). A silent close shows
	// in lbproxy's open sessions, 5 s before the end.
	if a.silentClose {
		if n := stats.at(length - 5*time.Second); n < 0 || n > 5 {
			t.Errorf("%s: lbproxy had %d sessions open 5 s before the tool's end, want the attack's all closed by its timeouts", a.name, n)
		}
		return
	}
	if exit != slowAllClosed || elapsed >= length || last.closed+last.connected < slowConns*9/10 {
		t.Errorf("%s: tool ran %v of %v with exit status %q, at second %d %d connections still open, %d pending, %d closed: want all closed by lbproxy's timeouts before the end (%q)",
			a.name, elapsed.Round(time.Second), length, exit, last.sec, last.connected, last.pending, last.closed, slowAllClosed)
	}
}

// slowRow is a line of slowhttptest's CSV statistics (-g -o): the counts of
// connections closed (by the server, or failed after connecting), pending
// (connecting) and connected at one second of the test, and whether its
// own probe found the service available.
type slowRow struct {
	sec, closed, pending, connected int
	available                       bool
}

// readSlowCSV reads the CSV statistics slowhttptest wrote to file, whose
// header is "Seconds,Closed,Pending,Connected,Service Available".
func readSlowCSV(file string) ([]slowRow, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("slowhttptest statistics: %w", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(io.LimitReader(f, 1<<20)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("slowhttptest statistics %s: %w", file, err)
	}
	if len(recs) < 2 || strings.Join(recs[0], ",") != "Seconds,Closed,Pending,Connected,Service Available" {
		return nil, fmt.Errorf("slowhttptest statistics %s: unexpected header or no rows: %q", file, recs)
	}
	rows := make([]slowRow, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		var n [5]int
		for i := range n {
			if n[i], err = strconv.Atoi(rec[i]); err != nil {
				return nil, fmt.Errorf("slowhttptest statistics %s: row %q: %w", file, rec, err)
			}
		}
		// The last column is the number of connections when the service
		// was available, 0 when not.
		rows = append(rows, slowRow{sec: n[0], closed: n[1], pending: n[2], connected: n[3], available: n[4] != 0})
	}
	return rows, nil
}

// slowAllClosed is slowhttptest's exit status when every connection it
// opened was closed before the test length.
const slowAllClosed = "No open connections left"

var (
	// ansi matches the colour escapes of slowhttptest's summary.
	ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	// exitStatus finds why slowhttptest ended, such as "No open
	// connections left" or "Hit test time limit".
	exitStatus = regexp.MustCompile(`Exit status:\s*([^\n]*)`)
)

// toolVersion runs bin with args and returns the first group of re in its
// output, or "(version unknown)".
func toolVersion(bin string, args []string, re string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput() // some exit non-zero after their help
	if m := regexp.MustCompile(re).FindSubmatch(ansi.ReplaceAll(out, nil)); m != nil {
		return string(m[1])
	}
	return "(version unknown)"
}

// probeCount is the tally of a legitimate client's requests during an
// attack.
type probeCount struct {
	mu         sync.Mutex
	ok, failed int
	errs       []string // the first few failures
	lat        []time.Duration
}

// run requests url every probeInterval, each on a new connection and
// bounded by probeTimeout, until done is closed or limit has passed.
func (p *probeCount) run(done <-chan struct{}, url string, limit time.Duration) {
	c := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer c.CloseIdleConnections()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	end := time.After(limit)
	for {
		select {
		case <-done:
			return
		case <-end:
			return
		case <-tick.C:
		}
		start := time.Now()
		err := probeOnce(c, url)
		d := time.Since(start)
		p.mu.Lock()
		if err != nil {
			p.failed++
			if len(p.errs) < 5 {
				p.errs = append(p.errs, err.Error())
			}
		} else {
			p.ok++
			p.lat = append(p.lat, d)
		}
		p.mu.Unlock()
	}
}

// probeOnce sends one legitimate request, which must be answered 200.
func probeOnce(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// String reports the counts and the latency percentiles.
func (p *probeCount) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lat := slices.Clone(p.lat)
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("%d ok, %d failed; latency p50 %v, p99 %v, max %v", p.ok, p.failed, pct(0.5), pct(0.99), pct(1))
}

// sessionsTimeline samples lbproxy's open frontend sessions from /stats
// once a second.
type sessionsTimeline struct {
	mu      sync.Mutex
	start   time.Time
	samples []sessionsSample
}

type sessionsSample struct {
	at    time.Duration // since the first sample
	cur   int64         // open sessions
	total uint64        // sessions accepted since lbproxy started
}

// run samples url until done is closed or limit has passed.
func (s *sessionsTimeline) run(done <-chan struct{}, url string, limit time.Duration) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer c.CloseIdleConnections()
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(limit)
	for {
		if cur, total, err := frontendSessions(c, url); err == nil {
			s.mu.Lock()
			s.samples = append(s.samples, sessionsSample{at: time.Since(s.start), cur: cur, total: total})
			s.mu.Unlock()
		}
		select {
		case <-done:
			return
		case <-end:
			return
		case <-tick.C:
		}
	}
}

// frontendSessions reads the open and the total sessions of lbproxy's
// frontend from its /stats at url.
func frontendSessions(c *http.Client, url string) (cur int64, total uint64, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var doc statsDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK || len(doc.Frontends) == 0 {
		return 0, 0, fmt.Errorf("/stats: %s, %d frontends", resp.Status, len(doc.Frontends))
	}
	return doc.Frontends[0].SessionsCur, doc.Frontends[0].SessionsTotal, nil
}

// at returns the open sessions of the last sample taken at or before d, or
// -1 if none was.
func (s *sessionsTimeline) at(d time.Duration) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := int64(-1)
	for _, x := range s.samples {
		if x.at > d {
			break
		}
		cur = x.cur
	}
	return cur
}

// accepted returns the sessions lbproxy accepted between the first and
// the last sample.
func (s *sessionsTimeline) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return 0
	}
	return int(s.samples[len(s.samples)-1].total - s.samples[0].total)
}
