package h1

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/lbkit/lbkit/internal/testutil"
)

// startH2 serves h over TLS with HTTP/2 (golang.org/x/net/http2 through
// TLSNextProto, as lb.HTTPFrontend does) and returns an HTTP/2 client.
func startH2(t *testing.T, h http.Handler, errLog *log.Logger) (*http.Client, string) {
	t.Helper()
	ca := testutil.NewCA(t)
	cfg := &http.Server{Handler: h, TLSConfig: ca.ServerConfig(t, "lb.test"), ErrorLog: errLog}
	if err := http2.ConfigureServer(cfg, &http2.Server{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: cfg}
	done := make(chan error, 1)
	go func() { done <- s.ServeTLS(ln, "", "") }()
	tr := &http2.Transport{TLSClientConfig: ca.ClientConfig("lb.test")}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
		<-done
	})
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://" + ln.Addr().String()
}

// TestStreamResetAbortsRoundTrip: an HTTP/2 client that cancels its
// request resets the stream; the round trip its handler forwards through
// the Transport to a server that never answers must end at once, through
// the request's hook (no context.AfterFunc), with context.Canceled.
func TestStreamResetAbortsRoundTrip(t *testing.T) {
	testutil.CheckLeaks(t)
	backend, tr := silentServer(t)
	started := make(chan string, 1)
	result := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), "GET", "http://"+backend.Addr+"/", nil)
		s := watchCancel(out.Context(), func() {})
		form := "afterfunc"
		if s.hook != nil {
			form = "hook"
		}
		s.stop()
		started <- form
		_, err := tr.RoundTrip(out)
		result <- err
	})
	client, url := startH2(t, h, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if form := <-started; form != "hook" {
			t.Errorf("the stream's request registered its abort by %s, want the hook", form)
		}
		time.Sleep(50 * time.Millisecond) // the request is on its way to the server
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/", nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the canceled request got a response")
	}
	waitCanceled(t, result, "the stream was reset")
}

// TestStreamHandler: streams' handlers run on the pool's workers and
// behave as on the HTTP/2 server's own goroutines: concurrent streams,
// the request's context and values, a panic (logged with the handler's
// own stack, http.ErrAbortHandler silently), and runtime.Goexit.
func TestStreamHandler(t *testing.T) {
	testutil.CheckLeaks(t)
	var logMu sync.Mutex
	var logs bytes.Buffer
	errLog := log.New(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), "", 0)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panicInHandler()
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/goexit":
			io.WriteString(w, "before goexit")
			runtime.Goexit()
		case "/ctx":
			if r.Context().Err() != nil || r.Context().Value(http.ServerContextKey) == nil {
				t.Errorf("request context: err %v, server %v", r.Context().Err(), r.Context().Value(http.ServerContextKey))
			}
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})
	client, url := startH2(t, h, errLog)
	get := func(path string) (string, error) {
		resp, err := client.Get(url + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			path := "/ctx"
			if i%2 == 1 {
				path = "/plain"
			}
			if b, err := get(path); err != nil || b != "ok "+path {
				t.Errorf("GET %s: %q, %v", path, b, err)
			}
		})
	}
	wg.Wait()
	if _, err := get("/goexit"); err == nil {
		t.Error("GET /goexit: the stream was not reset")
	}
	if _, err := get("/abort"); err == nil {
		t.Error("GET /abort: the stream was not reset")
	}
	if _, err := get("/panic"); err == nil {
		t.Error("GET /panic: the stream was not reset")
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, "boom") || !strings.Contains(text, "panicInHandler") {
		t.Errorf("the panic's log lacks its value or the handler's stack:\n%s", text)
	}
	if strings.Contains(text, http.ErrAbortHandler.Error()) {
		t.Errorf("http.ErrAbortHandler was logged:\n%s", text)
	}
}

//go:noinline
func panicInHandler() { panic("boom") }
