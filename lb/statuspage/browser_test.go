package statuspage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// browser starts headless Chromium (Debian's package chromium) with a new
// profile, and returns a tab's context, bounded by timeout.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path := testutil.LookBinary(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1800, 700),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	return ctx
}

// TestBrowser loads the page in headless Chromium: it shows the servers,
// styled (the Content-Security-Policy lets its stylesheet through), and a
// server taken down shows as down after one refresh. With
// LBKIT_SCREENSHOT_DIR set, it leaves a screenshot of the page there.
func TestBrowser(t *testing.T) {
	f := newWebFixture(t, time.Second)
	c := client(t)
	for range 6 {
		get(t, c, f.front+"/")
	}
	ctx := browser(t, 60*time.Second)

	must(t, chromedp.Do(ctx, chromedp.Navigate(f.url)))
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`tr.up`))))
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body`)))
	must(t, err)
	for _, want := range []string{"lbkit status: test", "Backend web: UP, 2 active, 0 backup", "front"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}
	rows, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`tr.up td:first-child`)))
	must(t, err)
	if len(rows) != 2 {
		t.Fatalf("%d servers up, want 2", len(rows))
	}
	style, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.CSS(`tr.up td`)))
	must(t, err)
	var bg string
	for _, p := range style {
		if p.Name == "background-color" {
			bg = p.Value
		}
	}
	if bg != "rgb(200, 240, 200)" {
		t.Errorf("background of a server up: %q; the stylesheet did not apply", bg)
	}
	screenshot(t, ctx, "up.png")

	// b goes down: the next refresh (1 s) shows it.
	f.pool.SetState("b", lb.StateDown, "test")
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	must(t, chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(`tr.down`))))
	down, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr.down`)))
	must(t, err)
	if !strings.HasPrefix(down, "b") || !strings.Contains(down, "DOWN") || !strings.Contains(down, "test") {
		t.Errorf("row of the server down: %q", down)
	}
	screenshot(t, ctx, "down.png")
}

// screenshot saves the page under $LBKIT_SCREENSHOT_DIR, when set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LBKIT_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}
