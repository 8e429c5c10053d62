package main

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// h2specCases is the number of test cases h2spec v2.2.1 runs by default.
const h2specCases = 145

// junitReport is the part of h2spec's JUnit report (-j) the tests read.
type junitReport struct {
	Suites []struct {
		Package string `xml:"package,attr"`
		Cases   []struct {
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct {
				Text string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runH2Spec runs h2spec against addr and returns its cases that did not
// pass ("package: name"), the number of cases run and its output.
func runH2Spec(t *testing.T, h2spec, addr string, tlsOn bool) (notPassed []string, cases int, output string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	args := []string{"-h", host, "-p", port, "-o", "5", "-j", report}
	if tlsOn {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, h2spec, args...).CombinedOutput()
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec %q: %v, no report (%v):\n%s", args, err, rerr, out)
	}
	var r junitReport
	if err := xml.Unmarshal(data, &r); err != nil {
		t.Fatalf("h2spec's report: %v", err)
	}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			cases++
			if c.Failure != nil || c.Error != nil || c.Skipped != nil {
				notPassed = append(notPassed, s.Package+": "+c.Name)
			}
		}
	}
	return notPassed, cases, string(out)
}

// TestLBProxyH2Spec runs h2spec, HTTP/2's conformance suite, against the
// HTTPS frontend and the h2c frontends: every case passes, except, with
// HTTP/1.1 served beside h2c, the invalid preface, which is an HTTP/1.1
// request line that gets its 400.
func TestLBProxyH2Spec(t *testing.T) {
	h2spec := testutil.LookTool(t, "h2spec")
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	for _, tc := range []struct {
		name string
		args []string
		tls  bool
		fail []string
	}{
		{"https", []string{"-mode", "https"}, true, nil},
		{"h2c-only", []string{"-mode", "http", "-h2c", "-h2-only"}, false, nil},
		{"h2c", []string{"-mode", "http", "-h2c"}, false, []string{"http2/3.5: Sends invalid connection preface"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := start(t, withFlags(t, tc.args...))
			notPassed, cases, output := runH2Spec(t, h2spec, addr, tc.tls)
			if cases != h2specCases {
				t.Errorf("h2spec ran %d cases, want %d", cases, h2specCases)
			}
			if strings.Join(notPassed, "\n") != strings.Join(tc.fail, "\n") {
				t.Errorf("cases not passed:\n%s\nwant:\n%s\nh2spec's output:\n%s", strings.Join(notPassed, "\n"), strings.Join(tc.fail, "\n"), output)
			}
		})
	}
}

// TestLBProxyH2C checks -h2c with Go's h2c client and curl, -backend-h2c
// against a server that speaks only h2c, and the flags' refusals.
func TestLBProxyH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	only := new(http.Protocols)
	only.SetUnencryptedHTTP2(true)
	backend := &http.Server{Protocols: only, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		})}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })

	addr := start(t, withFlags(t, "-mode", "http", "-h2c", "-backend-h2c", "-backends", ln.Addr().String()))
	tr := &http.Transport{Protocols: only}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || string(body) != "HTTP/2.0" {
		t.Errorf("h2c client through -h2c -backend-h2c: %s, the server saw %q; want HTTP/2.0 both", resp.Proto, body)
	}

	curl := testutil.LookBinary(t, "curl", "curl")
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--http2-prior-knowledge",
		"-w", " %{http_version}", "http://"+addr+"/").CombinedOutput()
	if err != nil || string(out) != "HTTP/2.0 2" {
		t.Errorf("curl --http2-prior-knowledge: %q, %v; want the server's HTTP/2.0 over HTTP/2", out, err)
	}

	// -h2-only over TLS: ALPN h2 only, HTTP/1.1 clients refused.
	t.Setenv("TMPDIR", t.TempDir()) // the generated CA file
	tlsAddr, lines := startOut(t, withFlags(t, "-mode", "https", "-h2-only", "-backends", ln.Addr().String(), "-backend-h2c"))
	roots := demoRoots(t, lines)
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	resp = getOK(t, &http.Client{Transport: h2, Timeout: 10 * time.Second}, "https://"+tlsAddr+"/")
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("-h2-only: response over %s, want HTTP/2.0", resp.Proto)
	}
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}}
	defer h1.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: h1, Timeout: 10 * time.Second}).Get("https://" + tlsAddr + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("-h2-only: an HTTP/1.1 client got %s over %s, want it refused", resp.Status, resp.Proto)
	}

	for _, args := range [][]string{
		{"-mode", "https", "-h2c"},
		{"-mode", "tcp", "-backend-h2c"},
		{"-mode", "http", "-h2-only"},
	} {
		err := refused(t, withFlags(t, append(args, "-backends", "127.0.0.1:1")...))
		if err == nil || !strings.Contains(err.Error(), args[2]) {
			t.Errorf("%q: %v, want %s refused", args, err, args[2])
		}
	}
}
