package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// HTTP checks an HTTP server, or an HTTPS one when TLS is set: it sends one
// request (Connection: close) and checks the response status and,
// optionally, that the body contains Body.
//
// For HTTPS, pass the TLS configuration the proxy uses towards the servers
// (lb.ReverseProxy.TLSClientConfig): certificate verification follows it,
// and the server name (SNI, and the name verified) is its ServerName, else
// Host, else the checked address's host (an IP address is verified against
// the certificate's IP addresses, without SNI).
type HTTP struct {
	// Method defaults to GET.
	Method string
	// Path is the request target; empty means "/".
	Path string
	// Host is the Host header; empty means the checked address.
	Host string
	// Status is the accepted status range, e.g. {200, 299}; the zero value
	// means 200-399. Status[1] zero means Status[0] alone.
	Status [2]int
	// Body, when set, must occur in the first 64 KiB of the response body.
	Body string
	// TLS, when not nil, makes the check HTTPS. It is cloned, never modified.
	TLS *tls.Config
}

// maxHTTPHeader bounds the response head.
const maxHTTPHeader = 16 << 10

// Check implements Probe.
func (p HTTP) Check(ctx context.Context, t Target) error {
	scheme := "http"
	if p.TLS != nil {
		scheme = "https"
	}
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", scheme, err)
	}
	defer c.Close()
	host := p.Host
	if host == "" {
		host = t.Addr
	}
	if p.TLS != nil {
		cfg := p.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = serverName(host)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("https: %w", &handshakeError{err})
		}
		c = tc
	}
	req, err := p.request(host)
	if err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("%s: send request: %w", scheme, err)
	}
	return p.checkResponse(bufio.NewReaderSize(io.LimitReader(c, maxHTTPHeader+maxReply), 4096), scheme)
}

// serverName is the host of host[:port], for tls.Config.ServerName: a
// name is sent as SNI and verified; an IP address is verified against the
// certificate's IP addresses (crypto/tls sends no SNI for it).
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

func (p HTTP) request(host string) ([]byte, error) {
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	path := p.Path
	if path == "" {
		path = "/"
	}
	for _, f := range []string{method, path, host} {
		if strings.ContainsAny(f, " \r\n\x00") {
			return nil, fmt.Errorf("http: %w: invalid character in %q", ErrUnexpected, f)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lbkit-health\r\nAccept: */*\r\nConnection: close\r\n\r\n", method, path, host)
	return b.Bytes(), nil
}

func (p HTTP) checkResponse(r *bufio.Reader, scheme string) error {
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	resp, err := readHTTPResponse(r, method)
	if err != nil {
		return fmt.Errorf("%s: %w", scheme, err)
	}
	defer resp.Body.Close()
	lo, hi := p.Status[0], p.Status[1]
	if lo == 0 && hi == 0 {
		lo, hi = 200, 399
	} else if hi == 0 {
		hi = lo
	}
	if resp.StatusCode < lo || resp.StatusCode > hi {
		return fmt.Errorf("%s: %w", scheme, &statusError{code: resp.StatusCode,
			msg: fmt.Sprintf("%v: status %s, want %s", ErrRefused, resp.Status, statusRange(lo, hi))})
	}
	if p.Body == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if !bytes.Contains(body, []byte(p.Body)) {
		if err != nil {
			return fmt.Errorf("%s: read body: %w", scheme, readErr(err))
		}
		return fmt.Errorf("%s: %w: body does not contain %q", scheme, ErrRefused, p.Body)
	}
	return nil
}

// readHTTPResponse parses a response head with net/http, after checking
// that it starts like one, so another protocol is reported as such.
func readHTTPResponse(r *bufio.Reader, method string) (*http.Response, error) {
	start, err := r.Peek(5)
	if err != nil {
		return nil, readErr(err)
	}
	if string(start) != "HTTP/" {
		return nil, fmt.Errorf("%w: not an HTTP response: %q", ErrUnexpected, printable(start))
	}
	resp, err := http.ReadResponse(r, &http.Request{Method: method}) // a HEAD response has no body
	if err != nil {
		return nil, fmt.Errorf("%w: bad HTTP response: %v", ErrUnexpected, err)
	}
	return resp, nil
}

func statusRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
}

// ParseStatus parses an expected status for HTTP.Status: "200" or a range
// "200-399".
func ParseStatus(s string) ([2]int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parseCode(lo)
	if err != nil {
		return [2]int{}, err
	}
	b := a
	if isRange {
		if b, err = parseCode(hi); err != nil {
			return [2]int{}, err
		}
		if b < a {
			return [2]int{}, fmt.Errorf("health: status range %q is empty", s)
		}
	}
	return [2]int{a, b}, nil
}

func parseCode(s string) (int, error) {
	if len(s) != 3 {
		return 0, fmt.Errorf("health: bad HTTP status %q", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, fmt.Errorf("health: bad HTTP status %q", s)
	}
	return n, nil
}
