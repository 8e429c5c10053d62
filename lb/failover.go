package lb

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// FailoverHost is a ready-made [ReverseProxy].Fallback that forwards the
// requests of a backend with no server up to one other host, such as a
// static site: the configuration model's failover_host, which HAProxy
// expresses as a backup server with a Host rewrite. The request keeps its
// method, path, query and body; its Host header becomes the failover
// host's name (with its port when one is given), so that a virtual host
// such as an object-store website answers; X-Forwarded-For, -Host, -Proto
// and -Port are rebuilt as for the servers.
//
// It is a handler rather than a ReverseProxy field so that it composes
// like any Fallback (one per ReverseProxy, or a different one per Route
// through a wrapping handler) and leaves the proxy's own path untouched.
//
// A FailoverHost is safe for concurrent use. Build it with
// [NewFailoverHost]; its fields must not change afterwards.
type FailoverHost struct {
	// URL is the failover host: scheme "http" or "https" and the host,
	// with no path.
	URL *url.URL

	rp *httputil.ReverseProxy
	tr *http.Transport
}

// NewFailoverHost returns a FailoverHost that forwards to host, given as
// "name", "name:port", "http://name[:port]" or "https://name[:port]"
// (without a scheme, "http"). tlsConfig configures the connections to an
// https host; nil means the defaults of crypto/tls (the host verified
// against the system roots, by its name). It is not modified.
//
// Connections to the failover host are bounded as the proxy's are: 5 s
// (DefaultConnectTimeout) to connect and 10 s for a TLS handshake, and
// DefaultServerTimeout for the response headers, without TCP keep-alive
// probes (as Pool.TCPKeepAlive's default). A failover host that
// cannot be reached is answered 503 Service Unavailable, logged at Debug
// level on logger (nil: slog.Default()).
func NewFailoverHost(host string, tlsConfig *tls.Config, logger *slog.Logger) (*FailoverHost, error) {
	u, err := parseFailoverHost(host)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: -1} // no TCP keep-alive, as Pool.TCPKeepAlive's default
	tr := &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConfig.Clone(),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultServerTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   64,
		DisableCompression:    true,
		ForceAttemptHTTP2:     u.Scheme == "https",
	}
	f := &FailoverHost{URL: u, tr: tr}
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u) // and Out.Host = "": the Host header is u.Host
			dropUnderscoreHeaders(pr.Out.Header, false)
			dropH2CUpgrade(pr.Out.Header)
			setForwarded(pr.In, pr.Out, new([4]string))
		},
		Transport: tr,
		ErrorLog:  discardLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				logger.LogAttrs(r.Context(), slog.LevelDebug, "failover host error",
					slog.String("failover", u.Host), slog.String("client", r.RemoteAddr),
					slog.String("path", r.URL.Path), slog.Any("error", err))
			}
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		},
	}
	return f, nil
}

// parseFailoverHost parses the forms NewFailoverHost accepts.
func parseFailoverHost(host string) (*url.URL, error) {
	raw := host
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("lb: failover host %q: %w", host, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("lb: failover host %q: scheme %q, want http or https", host, u.Scheme)
	case u.Hostname() == "":
		return nil, fmt.Errorf("lb: failover host %q: no host name", host)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("lb: failover host %q: only a scheme, a host and a port are allowed", host)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// ServeHTTP forwards r to the failover host.
func (f *FailoverHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.rp.ServeHTTP(w, r)
}

// CloseIdleConnections closes the idle connections to the failover host.
func (f *FailoverHost) CloseIdleConnections() { f.tr.CloseIdleConnections() }
