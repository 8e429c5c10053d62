package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestBrowserHTTP3 loads a page from lbproxy's HTTPS frontend with -http3
// in headless Chromium (Debian's package chromium) over QUIC: Chromium
// speaks QUIC to a server whose certificate a private CA signed only when
// it is told the certificate's SPKI hash and the origin to use QUIC for.
// The page must come over h3 by Chromium's account (its network events)
// and by the proxy's (the access log's proto).
func TestBrowserHTTP3(t *testing.T) {
	path := testutil.LookBinary(t, "chromium", "chromium")
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	logFile := filepath.Join(t.TempDir(), "access.log")
	addr, lines := startOut(t, withFlags(t, "-mode", "https", "-http3", "-access-log", "json", "-access-log-file", logFile))

	// The SPKI hash of the certificate the frontend presents.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: demoRoots(t, lines), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	conn.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("enable-quic", true),
		chromedp.Flag("origin-to-force-quic-on", addr),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(sum[:])),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()

	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate("https://"+addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Protocol != "h3" {
		t.Errorf("Chromium got %d over %q, want 200 over h3", resp.Status, resp.Protocol)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "hello from") {
		t.Errorf("page %q, want a demo backend's greeting", text)
	}

	// The proxy's access log records the request as HTTP/3.
	var protos []string
	testutil.Eventually(t, "the access log to record the page", func() bool {
		b, err := os.ReadFile(logFile)
		if err != nil {
			return false
		}
		protos = protos[:0]
		for l := range strings.Lines(string(b)) {
			var rec struct {
				Proto, URI string
			}
			if json.Unmarshal([]byte(l), &rec) == nil && rec.URI == "/" {
				protos = append(protos, rec.Proto)
			}
		}
		return len(protos) > 0
	})
	for _, p := range protos {
		if p != "HTTP/3.0" {
			t.Errorf("the access log records / over %q, want HTTP/3.0 only: %q", p, protos)
		}
	}
}
