package h1

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/lbkit/lbkit/internal/gopool"
)

// An HTTP/2 stream served through TLSNextProto (golang.org/x/net/http2's
// server) runs its handler on a goroutine the HTTP/2 server starts per
// stream. Two costs come with it, each about a tenth of the proxy's CPU
// under an HTTP/2 load: that goroutine's stack grows, by copying, to what
// proxying a request takes; and the engine learns of the stream's
// cancellation through context.AfterFunc on the stream's context, which
// allocates the context's map of children for each stream.
//
// serveStream runs the handler on a worker of internal/gopool instead,
// whose stack the streams before it have grown, and the stream's goroutine,
// which would otherwise only wait, watches the stream's context: when it
// is canceled (the client reset the stream, or the connection ended) it
// runs the engine's abort through the request's abortHook, as the HTTP/1.1
// server does for its own requests. The handler's request carries a
// context that adds the hook to the stream's; its Done, Err and values are
// the stream's.

// streamTask is one stream's handler call on a worker.
type streamTask struct {
	h    http.Handler
	w    http.ResponseWriter
	r    *http.Request
	ctx  hookContext
	hook abortHook
	done chan struct{} // from donePool; the worker sends once

	returned bool   // the handler returned
	panicked any    // or panicked with this value
	stack    []byte // and its goroutine's stack, but for http.ErrAbortHandler
}

// donePool holds the buffered channels of finished streams: each is empty
// again once its stream's goroutine has received from it.
var donePool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// serveStream calls h.ServeHTTP(w, r) on a worker and returns when it has
// returned. A panic of the handler is raised again here (see
// handlerPanic), and a runtime.Goexit called again, for the HTTP/2
// server's recovery, which resets the stream.
func serveStream(h http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	canceled := ctx.Done()
	if canceled == nil {
		h.ServeHTTP(w, r)
		return
	}
	t := &streamTask{h: h, w: w}
	t.hook.ctx = ctx
	t.ctx = hookContext{Context: ctx, hook: &t.hook}
	t.r = r.WithContext(&t.ctx)
	t.done = donePool.Get().(chan struct{})
	gopool.Go(t)
	select {
	case <-t.done:
	case <-canceled:
		t.hook.fire()
		<-t.done
	}
	donePool.Put(t.done)
	if t.returned {
		return
	}
	switch p := t.panicked; {
	case p == nil:
		runtime.Goexit() // the handler's
	case p == http.ErrAbortHandler:
		panic(p)
	default:
		panic(&handlerPanic{value: p, stack: t.stack})
	}
}

// Run is the worker's part: the handler call.
func (t *streamTask) Run() {
	defer func() {
		// After a runtime.Goexit, recover returns nil and the worker
		// ends; serveStream calls Goexit on the stream's goroutine.
		if p := recover(); p != nil {
			t.panicked = p
			if p != http.ErrAbortHandler {
				t.stack = debug.Stack()
			}
		}
		t.done <- struct{}{}
	}()
	t.h.ServeHTTP(t.w, t.r)
	t.returned = true
}

// handlerPanic is the value with which serveStream panics again when a
// stream's handler panicked with value: its text has the handler's own
// goroutine stack, which the HTTP/2 server's log of the panic would not
// show.
type handlerPanic struct {
	value any
	stack []byte
}

func (p *handlerPanic) Error() string {
	return fmt.Sprintf("%v\n\nthe handler's goroutine:\n%s", p.value, p.stack)
}

// Unwrap returns the handler's panic value if it is an error.
func (p *handlerPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}
