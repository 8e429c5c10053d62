package tlsmode_test

import (
	"context"
	"crypto/tls"
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

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/tlsmode"
)

// freePort returns a loopback port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs a server process until the test ends.
func startProcess(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	log := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s output:\n%s", filepath.Base(name), b)
		}
	})
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s did not start listening", addr)
}

// pebble starts pebble-challtestsrv as a DNS server answering 127.0.0.1
// for every name, and Pebble resolving through it and validating
// challenges on httpPort and tlsPort of 127.0.0.1. It returns the
// directory URL, an HTTP client trusting Pebble's API, and a pool holding
// the root that signs the certificates Pebble issues.
func pebble(t *testing.T, httpPort, tlsPort int) (string, *http.Client, *x509.CertPool) {
	t.Helper()
	pebbleBin := testutil.LookBinary(t, "pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble (go install)")
	challBin := testutil.LookBinary(t, "pebble-challtestsrv", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv (go install)")

	dnsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	challMgmt := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startProcess(t, nil, challBin, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", dnsAddr, "-management", challMgmt,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitTCP(t, challMgmt)

	// Pebble's own HTTPS uses a certificate of ours.
	apiCA := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, apiCA.Leaf(t, "127.0.0.1"))
	api := "127.0.0.1:" + strconv.Itoa(freePort(t))
	mgmt := "127.0.0.1:" + strconv.Itoa(freePort(t))
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
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		pebbleBin, "-config", confFile, "-dnsserver", dnsAddr)
	waitTCP(t, api)
	waitTCP(t, mgmt)

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: apiCA.ClientConfig("127.0.0.1")}}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: %q", root)
	}
	return "https://" + api + "/dir", client, roots
}

// TestACMEPebble obtains a certificate from Pebble on the first handshake
// for the name, over TLS-ALPN-01 and over HTTP-01, and serves it.
func TestACMEPebble(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			backend := testutil.NameServer(t, "acme-backend")
			// The listeners open first: Pebble needs their ports.
			httpLn, tlsLn := listen(t), listen(t)
			httpPort, tlsPort := httpLn.Addr().(*net.TCPAddr).Port, tlsLn.Addr().(*net.TCPAddr).Port
			if challenge == "http-01" {
				// Pebble's TLS-ALPN-01 checks go to a closed port, so only
				// HTTP-01 can succeed.
				_, cp, _ := net.SplitHostPort(testutil.ClosedAddr(t))
				tlsPort, _ = strconv.Atoi(cp)
			}
			dir, client, roots := pebble(t, httpPort, tlsPort)
			acme, err := tlsmode.NewACME(tlsmode.ACMEConfig{DirectoryURL: dir, Hosts: []string{"acme.test"}, HTTPClient: client, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var challenges http.Handler = http.NotFoundHandler()
			if challenge == "http-01" {
				challenges = acme.HTTPHandler(nil) // enables HTTP-01
			}
			serveHTTPOn(t, httpLn, nil, challenges)
			certs := &tlsmode.Store{ACME: acme}
			frontAddr := serveL4On(t, tlsLn, tlsmode.Offload(tlsmode.Config{Certificates: certs}.ServerConfig(), pool(t, backend.Addr)))

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			d := tls.Dialer{Config: &tls.Config{ServerName: "acme.test", RootCAs: roots}}
			c, err := d.DialContext(ctx, "tcp", frontAddr)
			if err != nil {
				t.Fatalf("first handshake (issuance): %v", err)
			}
			c.Close()
			// Served from the cache now, verified against Pebble's root.
			got, st, err := greeting(t, frontAddr, &tls.Config{ServerName: "acme.test", RootCAs: roots})
			if err != nil {
				t.Fatal(err)
			}
			leaf := st.PeerCertificates[0]
			if got != "acme-backend" || len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "acme.test" {
				t.Errorf("reached %q with a certificate for %v", got, leaf.DNSNames)
			}
			// Names outside Hosts get no certificate from the CA.
			if _, _, err := greeting(t, frontAddr, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}); err == nil {
				t.Error("handshake for a name outside Hosts succeeded without a certificate")
			}
		})
	}
}
