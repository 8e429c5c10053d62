package lb

import (
	"context"
	"errors"
	"net"
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
// Serve calls fe.Serve(ln): ln is served as it is, as net/http does. For
// HTTPS from an [*http.Server], use [ServeTLS].
func Serve(ctx context.Context, fe Frontend, ln net.Listener, grace time.Duration, also ...Shutdowner) error {
	return serve(ctx, fe, fe.Serve, ln, grace, also)
}

// ServeTLS is [Serve] for an HTTPS frontend (an [*http.Server] or an
// [*HTTPFrontend]): it runs srv.ServeTLS(ln, "", "") instead of
// srv.Serve(ln), so the certificates come from the http.Server's TLSConfig
// (which must provide them: Certificates or GetCertificate) and HTTP/2 is
// offered through ALPN unless it is turned off, exactly as net/http does.
// Shutdown and its grace are Serve's.
func ServeTLS(ctx context.Context, srv TLSFrontend, ln net.Listener, grace time.Duration, also ...Shutdowner) error {
	return serve(ctx, srv, func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, ln, grace, also)
}

// serve runs run(ln) for fe until ctx is done, then shuts fe and also down.
func serve(ctx context.Context, fe Frontend, run func(net.Listener) error, ln net.Listener, grace time.Duration, also []Shutdowner) error {
	errc := make(chan error, 1)
	go func() { errc <- run(ln) }()
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
