package h1

import (
	"context"
)

// A request read by the Server has a context of its own type, reqContext,
// through which the engine, when it forwards that request (or one whose
// context adds only values to it), learns of its cancellation without
// context.AfterFunc. AfterFunc allocates a context, a stop function and,
// in the parent, a map of children, for every round trip; here the engine
// leaves its connection's abortIO in the request's response, which runs it
// when the Server cancels the request. That is the only way the context
// can be canceled when the connection's context has no Done channel, the
// condition under which reqContext offers it.

// reqContext is the context of a request the Server serves: a cancelCtx,
// and the request's srvResponse for the engine.
type reqContext struct {
	context.Context
	w *srvResponse
}

// abortKey is the context key under which a reqContext returns its
// srvResponse, when its cancellation goes only through cancelRequest.
type abortKey struct{}

func (c *reqContext) Value(key any) any {
	if key == (abortKey{}) {
		if c.w.hooked {
			return c.w
		}
		return nil
	}
	return c.Context.Value(key)
}

// cancelRequest cancels the request's context and runs the engine's abort,
// if one is registered.
func (w *srvResponse) cancelRequest() {
	w.cancel()
	w.abortMu.Lock()
	f := w.abort
	w.abort, w.aborted = nil, true
	w.abortMu.Unlock()
	if f != nil {
		f()
	}
}

// onAbort registers f to run when the request is canceled, and reports
// whether it did; f runs at once if the request was canceled already. It
// fails when another is registered (two round trips at once on one
// request), which then use context.AfterFunc.
func (w *srvResponse) onAbort(f func()) bool {
	w.abortMu.Lock()
	if w.abort != nil {
		w.abortMu.Unlock()
		return false
	}
	if w.aborted {
		w.abortMu.Unlock()
		f()
		return true
	}
	w.abort = f
	w.abortMu.Unlock()
	return true
}

// stopAbort undoes onAbort; it reports whether f was kept from running.
func (w *srvResponse) stopAbort() bool {
	w.abortMu.Lock()
	defer w.abortMu.Unlock()
	if w.abort == nil {
		return false
	}
	w.abort = nil
	return true
}

// stopper undoes the registration of a round trip's abortIO for its
// request's cancellation. The zero stopper has none.
type stopper struct {
	after func() bool  // context.AfterFunc's stop
	w     *srvResponse // the Server's request it is registered with (onAbort)
}

// watchCancel registers abort to run when ctx is canceled.
func watchCancel(ctx context.Context, abort func()) stopper {
	done := ctx.Done()
	if done == nil {
		return stopper{}
	}
	if w, ok := ctx.Value(abortKey{}).(*srvResponse); ok && w.rctx.Done() == done && w.onAbort(abort) {
		return stopper{w: w}
	}
	return stopper{after: context.AfterFunc(ctx, abort)}
}

// stop reports whether it stopped abort from running, as
// context.AfterFunc's stop does; true when none was registered.
func (s stopper) stop() bool {
	switch {
	case s.after != nil:
		return s.after()
	case s.w != nil:
		return s.w.stopAbort()
	}
	return true
}
