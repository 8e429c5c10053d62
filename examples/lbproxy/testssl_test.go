package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// testsslFullEnv selects testssl's full default run in TestLBProxyTestSSL
// instead of the short one of the suite; scripts/testssl.sh sets it.
const testsslFullEnv = "LBKIT_TESTSSL_FULL"

// testsslShort are the checks of the suite's run, those that lbproxy's
// configuration decides: protocols, cipher categories, server defaults
// (certificate, session tickets, extensions), HTTP headers (HSTS) and the
// configuration-dependent vulnerabilities (renegotiation, TLS compression
// (CRIME), HTTP compression (BREACH), protocol fallback); the cipher
// categories cover the cipher-bound ones (RC4, SWEET32, FREAK, LOGJAM,
// BEAST, LUCKY13). Every connection is bounded by the timeouts. They take
// about two minutes. The full run (testssl's defaults, about five) adds
// forward secrecy, server preferences, each cipher per protocol, client
// simulations and the implementation bugs (Heartbleed, CCS, Ticketbleed,
// ROBOT) that crypto/tls does not share.
var testsslShort = []string{"--protocols", "--std", "--server-defaults", "--headers",
	"--renegotiation", "--crime", "--breach", "--tls-fallback"}

// testsslTolerated are the findings above INFO that a certificate from a
// CA generated for the test cannot avoid, that belong to the backend's
// responses rather than to lbproxy, or that are testssl's own, each with
// the reason. The key is the finding's id without testssl's
// " <hostCert#N>" suffix.
var testsslTolerated = map[string]string{
	// The test PKI.
	"cert_expirationStatus":        "the test CA issues certificates valid for a day",
	"cert_notAfter":                "the test CA issues certificates valid for a day",
	"cert_revocation":              "a CA generated for the test publishes neither CRL nor OCSP",
	"cert_ocspURL":                 "a CA generated for the test runs no OCSP responder",
	"cert_crlDistributionPoints":   "a CA generated for the test publishes no CRL",
	"OCSP_stapling":                "no OCSP responder to staple from",
	"cert_mustStapleExtension":     "no OCSP responder to staple from",
	"cert_certificateTransparency": "a certificate from a private CA is logged in no CT log",
	"DNS_CAArecord":                "localhost has no DNS CAA record (and --nodns none looks none up)",
	// crypto/tls.
	"TLS_session_ticket": "crypto/tls advertises its fixed seven-day ticket lifetime (maxSessionTicketLifetime; " +
		"no API sets it); lbproxy's ticket keys (tlsmode.TicketKeys) encrypt for a day and are dropped after seven, as crypto/tls's own",
	// The backend's responses, which lbproxy forwards as they are.
	"security_headers": "X-Frame-Options, X-Content-Type-Options, Content-Security-Policy and the like are the application's, set by the backend",
	// testssl's own.
	"engine_problem": "the local OpenSSL has no GOST engine; GOST ciphers are not probed, and crypto/tls has none",
}

// testsslFinding is one entry of testssl's flat JSON output (--jsonfile).
type testsslFinding struct {
	ID       string `json:"id"`
	IP       string `json:"ip"`
	Port     string `json:"port"`
	Severity string `json:"severity"`
	CVE      string `json:"cve"`
	CWE      string `json:"cwe"`
	Finding  string `json:"finding"`
}

// TestLBProxyTestSSL runs testssl.sh against lbproxy's HTTPS frontend, with
// a certificate from a CA generated at test time and -hsts 31536000, and
// fails on every finding of severity LOW or above (or WARN, testssl's own
// trouble) but those listed in testsslTolerated. With
// LBKIT_TESTSSL_FULL=1 (scripts/testssl.sh) it runs testssl's full default
// set of checks instead of the suite's shorter one.
func TestLBProxyTestSSL(t *testing.T) {
	bin := testutil.LookBinary(t, "testssl", "testssl.sh")
	openssl := testutil.LookBinary(t, "openssl", "openssl")
	t.Logf("testssl %s (%s), %s", toolVersion(bin, []string{"--version"}, `testssl\s+([0-9][^ \n]*)`), bin,
		toolVersion(openssl, []string{"version"}, `(OpenSSL [^ \n]+)`))
	testutil.CheckLeaks(t)

	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "localhost", "127.0.0.1"))
	be := testutil.HTTPBackend(t, "a")
	cfg := withFlags(t, "-mode", "https", "-hsts", "31536000", "-cert", certFile, "-key", keyFile, "-backends", be.Addr)
	addr := start(t, cfg)
	_, port, _ := strings.Cut(addr, ":")

	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "testssl.json")
	args := []string{"--quiet", "--color", "0", "--warnings", "off", "--openssl", openssl,
		"--connect-timeout", "10", "--openssl-timeout", "10", "--add-ca", ca.WriteCAFile(t),
		"--ip", "127.0.0.1", "--nodns", "none", "--jsonfile", jsonFile}
	limit := 6 * time.Minute
	if os.Getenv(testsslFullEnv) == "" {
		args = append(args, testsslShort...)
	} else {
		limit = 30 * time.Minute
	}
	args = append(args, "https://localhost:"+port+"/")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("testssl %q ran %v", args, time.Since(start).Round(time.Second))
	// testssl's exit status counts failed checks, not findings: read the
	// findings whatever it was, and fail on a run that wrote none.
	b, rerr := os.ReadFile(jsonFile)
	var findings []testsslFinding
	if rerr == nil {
		rerr = json.Unmarshal(b, &findings)
	}
	if rerr != nil || len(findings) == 0 {
		t.Fatalf("testssl: %v; no findings read (%v)\n%s", err, rerr, out.String())
	}

	counts := map[string]int{}
	var bad, tolerated []string
	for _, f := range findings {
		counts[f.Severity]++
		switch f.Severity {
		case "OK", "INFO", "DEBUG":
			continue
		}
		id, _, _ := strings.Cut(f.ID, " ")
		line := fmt.Sprintf("%s %s: %s", f.Severity, f.ID, f.Finding)
		if reason, ok := testsslTolerated[id]; ok {
			tolerated = append(tolerated, line+" (tolerated: "+reason+")")
			continue
		}
		bad = append(bad, line)
	}
	t.Logf("testssl: %d findings by severity: %v", len(findings), counts)
	for _, l := range tolerated {
		t.Logf("testssl: %s", l)
	}
	if len(bad) > 0 {
		t.Errorf("testssl: %d findings:\n%s\n\ntestssl's output:\n%s", len(bad), strings.Join(bad, "\n"), out.String())
	}

	// The checks ran and saw what lbproxy is configured for: TLS 1.2 and
	// 1.3 only, no weak cipher, the test CA trusted through --add-ca, HSTS
	// for a year, no client renegotiation, no compression.
	ids := map[string]testsslFinding{}
	for _, f := range findings {
		ids[f.ID] = f
	}
	for _, want := range []struct{ id, finding string }{
		{"SSLv3", "not offered"},
		{"TLS1", "not offered"},
		{"TLS1_1", "not offered"},
		{"TLS1_2", "offered"},
		{"TLS1_3", "offered"},
		{"cipherlist_LOW", "not offered"},
		{"cert_chain_of_trust", "passed"},
		{"HSTS_time", "365 days"},
		{"secure_client_renego", "not vulnerable"},
		{"CRIME_TLS", "not vulnerable"},
		{"BREACH", "not vulnerable"},
	} {
		f, ok := ids[want.id]
		if !ok || !strings.HasPrefix(f.Finding, want.finding) {
			t.Errorf("testssl: %s = %+v, want a finding beginning %q (ids seen: %v)", want.id, f, want.finding, slices.Sorted(maps.Keys(ids)))
		}
	}
}
