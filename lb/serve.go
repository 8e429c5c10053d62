package lb

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Shutdowner is anything that drains gracefully and can be closed forcibly:
// a Frontend, or a ReverseProxy with tracked upgraded streams.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// Serve runs fe on ln until ctx is done, then shuts it down gracefully:
// fe and every also stop taking new work and get grace to finish what they
// have; at the deadline whatever is left is closed forcibly. A non-positive
// grace closes at once. Serve returns nil after a shutdown caused by ctx,
// and fe.Serve's error if it failed on its own.
//
// Pass the ReverseProxy serving fe's requests in also, so that WebSocket and
// other upgraded streams, which http.Server no longer tracks, are drained too.
//
// When fe is an [*http.Server] whose TLSConfig is set, Serve serves TLS on ln
// with it, as fe.ServeTLS(ln, "", "") does: the certificates come from the
// TLSConfig, and HTTP/2 is offered through ALPN unless the server turns it
// off. Any other Frontend serves ln as it is.
func Serve(ctx context.Context, fe Frontend, ln net.Listener, grace time.Duration, also ...Shutdowner) error {
	serve := fe.Serve
	if hs, ok := fe.(*http.Server); ok && hs.TLSConfig != nil {
		serve = func(ln net.Listener) error { return hs.ServeTLS(ln, "", "") }
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, ErrFrontendClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	all := append([]Shutdowner{fe}, also...)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(grace, 0))
	defer cancel()
	done := make(chan error, len(all))
	for _, s := range all {
		go func() { done <- s.Shutdown(sctx) }()
	}
	var graceErr error
	for range all {
		if err := <-done; err != nil {
			graceErr = err
		}
	}
	if graceErr != nil {
		for _, s := range all {
			s.Close()
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, ErrFrontendClosed) {
		return err
	}
	return nil
}
