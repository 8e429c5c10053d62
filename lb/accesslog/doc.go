// Package accesslog formats and writes the access records of lbkit's
// frontends (lb.AccessRecord): as JSON through log/slog, or as the text of
// HAProxy's "option httplog" and "option tcplog" lines, which HAProxy's log
// analyser halog reads. Records go to an io.Writer (stderr, a file) or to a
// syslog server over UDP or TCP, framed as RFC 5424 or RFC 3164 as HAProxy
// sends them.
//
// A Writer stands between the data path and the sink: Log copies the record
// into a bounded buffer and returns at once; one goroutine, owned by the
// Writer and ended by Close, drains it. When the buffer is full the record
// is dropped and counted (Dropped), so that a slow disk or syslog server
// never slows the proxy.
//
//	w := accesslog.NewWriter(accesslog.HAProxy(os.Stderr), 0)
//	defer w.Close()
//	proxy := &lb.ReverseProxy{Name: "web", Pool: pool, AccessLog: w}
//
//	// JSON, one slog record per request:
//	j := accesslog.NewWriter(accesslog.Slog(slog.NewJSONHandler(f, nil)), 0)
//
//	// RFC 5424 syslog over UDP:
//	s, err := accesslog.DialSyslog("udp", "127.0.0.1:514", accesslog.SyslogOptions{})
//	sw := accesslog.NewWriter(accesslog.HAProxy(s), 0)
package accesslog
