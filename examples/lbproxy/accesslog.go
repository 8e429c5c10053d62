package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"

	"github.com/lbkit/lbkit/lb/accesslog"
)

// Access logs (-access-log FORMAT): one record per HTTP request or TCP
// session, as JSON (slog) or as HAProxy's httplog/tcplog lines, written to
// stderr, to -access-log-file, or to the syslog server of
// -access-log-syslog (udp://HOST:PORT or tcp://HOST:PORT, framed as
// -access-log-syslog-format). A Writer buffers them so that a slow sink
// never slows the proxy; what it drops is counted in /metrics.

// checkAccessLog reports a bad combination of the access-log flags.
func checkAccessLog(cfg *config) error {
	switch cfg.accessLog {
	case "off":
		if cfg.accessLogFile != "" || cfg.accessLogSyslog != "" {
			return errors.New("lbproxy: -access-log-file and -access-log-syslog need -access-log json or haproxy")
		}
		return nil
	case "json", "haproxy":
	default:
		return fmt.Errorf("lbproxy: unknown -access-log %q (want off, json or haproxy)", cfg.accessLog)
	}
	if cfg.accessLogFile != "" && cfg.accessLogSyslog != "" {
		return errors.New("lbproxy: -access-log-file and -access-log-syslog exclude each other")
	}
	if cfg.accessLogSyslog != "" {
		if _, _, err := syslogAddr(cfg.accessLogSyslog); err != nil {
			return err
		}
		if f := cfg.accessLogSyslogFormat; f != accesslog.RFC5424 && f != accesslog.RFC3164 {
			return fmt.Errorf("lbproxy: unknown -access-log-syslog-format %q (want %s or %s)", f, accesslog.RFC5424, accesslog.RFC3164)
		}
	}
	return nil
}

// syslogAddr splits a -access-log-syslog URL into network and address.
func syslogAddr(s string) (network, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Host == "" || u.Path != "" {
		return "", "", fmt.Errorf("lbproxy: -access-log-syslog %q: want udp://HOST:PORT or tcp://HOST:PORT", s)
	}
	return u.Scheme, u.Host, nil
}

// openAccessLog opens the access log the flags ask for: nil when
// -access-log is off. Close the Writer to flush and close its sink.
func openAccessLog(cfg *config) (*accesslog.Writer, error) {
	if cfg.accessLog == "off" {
		return nil, nil
	}
	var w io.Writer = struct{ io.Writer }{os.Stderr} // never closed
	switch {
	case cfg.accessLogFile != "":
		f, err := os.OpenFile(cfg.accessLogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -access-log-file: %w", err)
		}
		w = f
	case cfg.accessLogSyslog != "":
		network, addr, err := syslogAddr(cfg.accessLogSyslog)
		if err != nil {
			return nil, err
		}
		s, err := accesslog.DialSyslog(network, addr, accesslog.SyslogOptions{Format: cfg.accessLogSyslogFormat, App: "lbproxy"})
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -access-log-syslog: %w", err)
		}
		w = s
	}
	if cfg.accessLog == "json" {
		return accesslog.NewWriter(closingSink{accesslog.Slog(slog.NewJSONHandler(w, nil)), w}, 0), nil
	}
	return accesslog.NewWriter(accesslog.HAProxy(w), 0), nil
}

// closingSink is a Sink that closes its writer when the Writer closes it,
// as accesslog.HAProxy's does.
type closingSink struct {
	accesslog.Sink
	w io.Writer
}

// Close closes the writer under the sink, when it has a Close.
func (s closingSink) Close() error {
	if c, ok := s.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
