package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// TestWatchCancelForms checks which registration watchCancel makes for
// the contexts a handler of the Server may pass to the engine: the
// request's own, and one that only adds values to it, use the request's
// hook; one with a cancellation of its own uses context.AfterFunc, as does
// a context from elsewhere.
func TestWatchCancelForms(t *testing.T) {
	type key struct{}
	got := make(chan [4]string, 1)
	form := func(s stopper) string {
		defer s.stop()
		switch {
		case s.hook != nil:
			return "hook"
		case s.after != nil:
			return "afterfunc"
		}
		return "none"
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		timed, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		other, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		got <- [4]string{
			form(watchCancel(ctx, func() {})),
			form(watchCancel(context.WithValue(ctx, key{}, 1), func() {})),
			form(watchCancel(timed, func() {})),
			form(watchCancel(other, func() {})),
		}
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, br := dial(t, addr)
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	want := [4]string{"hook", "hook", "afterfunc", "afterfunc"}
	if g := <-got; g != want {
		t.Fatalf("registrations %q, want %q", g, want)
	}
	if form(watchCancel(context.Background(), func() {})) != "none" {
		t.Fatal("a context that cannot be canceled got a registration")
	}
}

// TestServerCloseAbortsRoundTrip forwards a request of the Server through
// the Transport to a server that never answers; the client then closes
// its connection, and the round trip must end at once with the request's
// cancellation, through the request's hook.
func TestServerCloseAbortsRoundTrip(t *testing.T) {
	testutil.CheckLeaks(t)
	backend, tr := silentServer(t)
	started := make(chan struct{})
	result := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), "GET", "http://"+backend.Addr+"/", nil)
		close(started)
		_, err := tr.RoundTrip(out)
		result <- err
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	time.Sleep(50 * time.Millisecond) // the request is on its way to the server
	c.Close()
	waitCanceled(t, result, "the client left")
}

// silentServer starts a server that reads requests and never answers,
// and a Transport to reach it.
func silentServer(t *testing.T) (*testutil.RawServer, *Transport) {
	t.Helper()
	backend := testutil.StartRaw(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.Copy(io.Discard, br)
	})
	tr := &Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return backend, tr
}

// waitCanceled waits for a round trip's result, which must be
// context.Canceled, after what.
func waitCanceled(t *testing.T, result <-chan error, what string) {
	t.Helper()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("round trip ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the round trip went on after %s", what)
	}
}

// TestAbortHook checks the hook's onAbort and stopAbort, and
// cancelRequest, against context.AfterFunc's contract: a stopped abort
// never runs, one registered after the cancellation runs at once, and stop
// reports whether it kept the abort from running.
func TestAbortHook(t *testing.T) {
	newW := func() *srvResponse {
		w := &srvResponse{}
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel, w.rctx = cancel, hookContext{Context: ctx, hook: &w.hook}
		w.hook.ctx = &w.rctx
		return w
	}
	ran := 0
	abort := func() { ran++ }

	w := newW()
	if !w.hook.onAbort(abort) || w.hook.onAbort(abort) {
		t.Fatal("a second registration on one request was accepted")
	}
	if !(stopper{hook: &w.hook}).stop() || ran != 0 {
		t.Fatal("stop before the cancellation did not keep the abort from running")
	}
	w.cancelRequest()
	if ran != 0 || w.rctx.Err() == nil {
		t.Fatalf("after stop and cancel: %d runs, context error %v", ran, w.rctx.Err())
	}

	w = newW()
	w.hook.onAbort(abort)
	w.cancelRequest()
	if ran != 1 || (stopper{hook: &w.hook}).stop() {
		t.Fatalf("cancel with an abort registered: %d runs; stop must then report false", ran)
	}

	if !w.hook.onAbort(abort) || ran != 2 || (stopper{hook: &w.hook}).stop() {
		t.Fatalf("registration after the cancellation: %d runs, want 2 and stop false", ran)
	}
}

// TestAdoptHeader: a response takes a header map as its own while its own
// is empty and unwritten, and writes its fields.
func TestAdoptHeader(t *testing.T) {
	adopted := make(chan [2]bool, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := w.(interface{ AdoptHeader(http.Header) bool })
		first := a.AdoptHeader(http.Header{"X-Adopted": {"1"}, "Content-Length": {"2"}})
		second := a.AdoptHeader(http.Header{"X-Second": {"1"}}) // the adopted map has fields
		adopted <- [2]bool{first, second}
		w.Header().Set("X-After", "2")
		io.WriteString(w, "ok")
	})
	_, addr := startServer(t, &http.Server{Handler: h}, 0)
	c, br := dial(t, addr)
	resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := <-adopted; got != [2]bool{true, false} {
		t.Fatalf("AdoptHeader results %v, want [true false]", got)
	}
	if resp.Header.Get("X-Adopted") != "1" || resp.Header.Get("X-After") != "2" || resp.Header.Get("X-Second") != "" || body != "ok" {
		t.Fatalf("response fields %v, body %q", resp.Header, body)
	}
}
