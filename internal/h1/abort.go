package h1

import (
	"context"
	"sync"
)

// A request read by the Server has a context of its own type, hookContext,
// through which the engine, when it forwards that request (or one whose
// context adds only values to it), learns of its cancellation without
// context.AfterFunc. AfterFunc allocates a context, a stop function and,
// in the parent, a map of children, for every round trip; here the engine
// leaves its connection's abortIO in the request's abortHook, which the
// Server runs when it cancels the request. That is the only way the
// context can be canceled when the connection's context has no Done
// channel, the condition under which the request's hookContext offers
// the hook. An HTTP/2 stream served through TLSNextProto has a hookContext
// too (stream.go): the stream's goroutine, which waits for the handler,
// watches the stream's context and runs the hook.

// abortHook holds the engine's abort for a request whose cancellation its
// server reports by calling fire.
type abortHook struct {
	ctx     context.Context // the request's context: its Done is the one fire stands for
	mu      sync.Mutex
	abort   func() // registered by onAbort
	aborted bool   // fire ran
}

// abortKey is the context key under which a request's context returns its
// *abortHook, when its cancellation goes through the hook's fire.
type abortKey struct{}

// hookContext is a request's context with the abortHook its server fires
// when it cancels the request, or none (nil): the Server's request (whose
// Context is a cancelCtx of the connection's) and an HTTP/2 stream's.
type hookContext struct {
	context.Context
	hook *abortHook
}

func (c *hookContext) Value(key any) any {
	if key == (abortKey{}) {
		if c.hook == nil {
			return nil // not a typed nil
		}
		return c.hook
	}
	return c.Context.Value(key)
}

// cancelRequest cancels the request's context and runs the engine's abort,
// if one is registered.
func (w *srvResponse) cancelRequest() {
	w.cancel()
	w.hook.fire()
}

// fire runs the registered abort, and any registered from now on at once.
func (h *abortHook) fire() {
	h.mu.Lock()
	f := h.abort
	h.abort, h.aborted = nil, true
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

// onAbort registers f to run when the request is canceled, and reports
// whether it did; f runs at once if the request was canceled already. It
// fails when another is registered (two round trips at once on one
// request), which then use context.AfterFunc.
func (h *abortHook) onAbort(f func()) bool {
	h.mu.Lock()
	if h.abort != nil {
		h.mu.Unlock()
		return false
	}
	if h.aborted {
		h.mu.Unlock()
		f()
		return true
	}
	h.abort = f
	h.mu.Unlock()
	return true
}

// stopAbort undoes onAbort; it reports whether f was kept from running.
func (h *abortHook) stopAbort() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.abort == nil {
		return false
	}
	h.abort = nil
	return true
}

// stopper undoes the registration of a round trip's abortIO for its
// request's cancellation. The zero stopper has none.
type stopper struct {
	after func() bool // context.AfterFunc's stop
	hook  *abortHook  // the request's hook it is registered with (onAbort)
}

// watchCancel registers abort to run when ctx is canceled.
func watchCancel(ctx context.Context, abort func()) stopper {
	done := ctx.Done()
	if done == nil {
		return stopper{}
	}
	// The hook stands for ctx only if no context between them adds a
	// cancellation of its own: then they share a Done channel.
	if h, ok := ctx.Value(abortKey{}).(*abortHook); ok && h.ctx.Done() == done && h.onAbort(abort) {
		return stopper{hook: h}
	}
	return stopper{after: context.AfterFunc(ctx, abort)}
}

// stop reports whether it stopped abort from running, as
// context.AfterFunc's stop does; true when none was registered.
func (s stopper) stop() bool {
	switch {
	case s.after != nil:
		return s.after()
	case s.hook != nil:
		return s.hook.stopAbort()
	}
	return true
}
