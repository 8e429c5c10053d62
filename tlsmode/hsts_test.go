package tlsmode_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

func TestHSTSString(t *testing.T) {
	for _, tt := range []struct {
		h    tlsmode.HSTS
		want string
	}{
		{tlsmode.HSTS{}, ""},
		{tlsmode.HSTS{MaxAge: -time.Second, Preload: true}, ""},
		{tlsmode.HSTS{MaxAge: 3600 * time.Second}, "max-age=3600"},
		{tlsmode.HSTS{MaxAge: 8760 * time.Hour, IncludeSubDomains: true, Preload: true}, "max-age=31536000; includeSubDomains; preload"},
	} {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.h, got, tt.want)
		}
	}
}

func TestHSTSHandler(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	// The server behind the proxy sets its own header when asked to, and
	// writes nothing at all on /empty.
	upstream := serveHTTPOn(t, listen(t), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("own") {
			w.Header().Set("Strict-Transport-Security", "max-age=60")
		}
		if r.URL.Path != "/empty" {
			io.WriteString(w, "ok")
		}
	}))
	rp := &lb.ReverseProxy{Pool: pool(t, upstream)}
	direct := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}) // writes nothing

	policy := tlsmode.HSTS{MaxAge: 365 * 24 * time.Hour, IncludeSubDomains: true}
	want := "max-age=31536000; includeSubDomains"
	serve := func(h tlsmode.HSTS, next http.Handler) (https, plain string) {
		cfg := ca.ServerConfig(t, "localhost", "127.0.0.1")
		return "https://" + serveHTTP(t, cfg, h.Handler(next)), "http://" + serveHTTPOn(t, listen(t), nil, h.Handler(next))
	}
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig("127.0.0.1")}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(url string) string {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", url, resp.Status)
		}
		if vs := resp.Header.Values("Strict-Transport-Security"); len(vs) > 1 {
			t.Fatalf("%s: %d headers %q", url, len(vs), vs)
		}
		return resp.Header.Get("Strict-Transport-Security")
	}

	https, plain := serve(policy, rp)
	for _, tt := range []struct{ url, want string }{
		{https + "/", want},
		{https + "/empty", want},
		{https + "/?own", "max-age=60"}, // the server's own header is kept
		{plain + "/", ""},
		{plain + "/?own", "max-age=60"}, // passed through untouched
	} {
		if got := get(tt.url); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.url, got, tt.want)
		}
	}
	https, _ = serve(policy, direct)
	if got := get(https + "/"); got != want {
		t.Errorf("handler writing nothing: %q, want %q", got, want)
	}

	override := policy
	override.Override = true
	https, _ = serve(override, rp)
	if got := get(https + "/?own"); got != want {
		t.Errorf("override: %q, want %q", got, want)
	}

	https, _ = serve(tlsmode.HSTS{}, rp)
	if got := get(https + "/"); got != "" {
		t.Errorf("off: %q", got)
	}
}
