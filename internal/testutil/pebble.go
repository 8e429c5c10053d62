package testutil

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Pebble is a running Pebble, the ACME test server of Let's Encrypt, with
// pebble-challtestsrv as its DNS server answering 127.0.0.1 for every name.
type Pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// Client is an HTTP client that trusts Pebble's API certificate.
	Client *http.Client
	// APICAFile is the PEM file of the CA of Pebble's API certificate.
	APICAFile string
	// Roots verifies the certificates Pebble issues.
	Roots *x509.CertPool
}

// StartPebble starts Pebble validating challenges on 127.0.0.1: HTTP-01
// on httpPort and TLS-ALPN-01 on tlsPort, which the code under test serves.
// Validation is real (no PEBBLE_VA_ALWAYS_VALID), without Pebble's random
// delays and nonce rejections. Both processes stop at tb.Cleanup; their
// output is logged when the test failed. The binaries are the versions
// pinned in scripts/tools/go.mod (see [LookTool]), never those on PATH;
// without them the test is skipped, or fails under CI.
func StartPebble(tb testing.TB, httpPort, tlsPort int) *Pebble {
	tb.Helper()
	return StartPebbleValidity(tb, httpPort, tlsPort, 0)
}

// StartPebbleValidity is StartPebble issuing certificates valid for
// validity (whole seconds; zero means Pebble's default of 90 days), for
// tests of renewal.
func StartPebbleValidity(tb testing.TB, httpPort, tlsPort int, validity time.Duration) *Pebble {
	tb.Helper()
	pebbleBin := LookTool(tb, "pebble")
	challBin := LookTool(tb, "pebble-challtestsrv")

	// Four distinct ports: two ports taken one after the other can be the
	// same once the first is released.
	ports := freePorts(tb, 4)
	dnsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	challMgmt := "127.0.0.1:" + strconv.Itoa(ports[1])
	chall := startProcess(tb, nil, challBin, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", dnsAddr, "-management", challMgmt,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitTCP(tb, chall, challMgmt)

	// Pebble's own HTTPS uses a certificate of ours.
	apiCA := NewCA(tb)
	certFile, keyFile := WritePEM(tb, apiCA.Leaf(tb, "127.0.0.1"))
	api := "127.0.0.1:" + strconv.Itoa(ports[2])
	mgmt := "127.0.0.1:" + strconv.Itoa(ports[3])
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  api,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
	}}
	if validity > 0 {
		conf["pebble"].(map[string]any)["profiles"] = map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": int(validity / time.Second)},
		}
	}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(tb.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	pebble := startProcess(tb, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		pebbleBin, "-config", confFile, "-dnsserver", dnsAddr)
	waitTCP(tb, pebble, api)
	waitTCP(tb, pebble, mgmt)

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: apiCA.ClientConfig("127.0.0.1")}}
	tb.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		tb.Fatal(err)
	}
	root, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		tb.Fatalf("testutil: pebble root: %q", root)
	}
	return &Pebble{DirectoryURL: "https://" + api + "/dir", Client: client, APICAFile: apiCA.WriteCAFile(tb), Roots: roots}
}

// FreePort returns a loopback TCP port that was free at the time of the
// call, for servers whose port must be known before they start.
func FreePort(tb testing.TB) int { return freePort(tb) }

func freePort(tb testing.TB) int {
	tb.Helper()
	return freePorts(tb, 1)[0]
}

// freePorts returns n distinct loopback TCP ports that were free at the
// time of the call: it holds each one until it has them all.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// startProcess runs a server process until the test ends. The returned
// channel yields the process's exit status once it has ended.
func startProcess(tb testing.TB, env []string, name string, args ...string) <-chan error {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	log := filepath.Join(tb.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(log)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1) // the exit status, then closed
	go func() {
		exited <- cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		f.Close()
		if tb.Failed() {
			b, _ := os.ReadFile(log)
			tb.Logf("%s output:\n%s", filepath.Base(name), b)
		}
	})
	return exited
}

// waitTCP waits until addr accepts connections, and fails the test when
// the process that should listen there exits first.
func waitTCP(tb testing.TB, exited <-chan error, addr string) {
	tb.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			tb.Fatalf("testutil: the server of %s exited before listening: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Fatalf("testutil: %s did not start listening", addr)
}
