package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/statuspage"
)

// The admin endpoints (-admin ADDR):
//
//	/healthz  200 "ok" while lbproxy serves; 503 "draining" once it stops
//	          accepting, and 503 naming the failing self-check ("accept: ...",
//	          "event loop: ..."). Never behind the token: load balancers and
//	          orchestrators in front of lbproxy probe it, and keepalived's
//	          vrrp_script (examples/ha). While this host does not hold the
//	          listening address (-freebind on a virtual IP held by the
//	          peer), the accept check waits for it and /healthz reports the
//	          rest, so that the standby counts as healthy.
//	/stats    the statistics of the frontend and the pool as JSON (the
//	          status page's data, lb/statuspage's Report)
//	/metrics  Prometheus exposition (lb/metrics, names as HAProxy's exporter)
//	/         the live status page (lb/statuspage)
//
// The last three require "Authorization: Bearer TOKEN" when a token is set
// (-admin-token-file, or LBKIT_ADMIN_TOKEN in the environment).

// tokenEnv names the environment variable that may hold the admin token.
const tokenEnv = "LBKIT_ADMIN_TOKEN"

// Self-check timing: a check every checkInterval, the frontend given
// acceptTimeout to accept the check's connection, and an event loop
// loopStall to serve a wake. A stuck accept loop or event loop shows on
// /healthz within about two intervals.
const (
	checkInterval = 2 * time.Second
	acceptTimeout = time.Second
	loopStall     = 2 * time.Second
	// maxProbes bounds the check connections waiting to be accepted.
	maxProbes = 32
)

// readToken returns the admin token: the content of file without
// surrounding white space when file is set, else $LBKIT_ADMIN_TOKEN; ""
// means none.
func readToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(tokenEnv)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("lbproxy: -admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("lbproxy: -admin-token-file %s is empty", file)
	}
	return tok, nil
}

// adminMux routes the admin endpoints: /healthz from health, /stats from
// stats, and metrics and status at /metrics and / (nil: 404). When token
// is not empty, every endpoint but /healthz requires it as a bearer token.
func adminMux(health, stats http.Handler, token string, metrics, status http.Handler) *http.ServeMux {
	guard := func(h http.Handler) http.Handler {
		if h == nil {
			h = http.NotFoundHandler()
		}
		if token == "" {
			return h
		}
		return requireToken(token, h)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", health)
	mux.Handle("/stats", guard(stats))
	mux.Handle("/metrics", guard(metrics))
	mux.Handle("/", guard(status))
	return mux
}

// requireToken serves h to requests that carry "Authorization: Bearer
// token", and 401 to others. The comparison takes the same time whatever
// the token sent.
func requireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbproxy"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// statsHandler serves what the status page shows, as JSON: the page's
// ?format=json, at a path of its own.
func statsHandler(page *statuspage.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(page.Report())
	})
}

// frontendSource adapts a frontend's Stats method value to the sources of
// the status page and the metrics collector.
type frontendSource func() lb.FrontendStats

// Stats returns f().
func (f frontendSource) Stats() lb.FrontendStats { return f() }

// selfCheck is lbproxy's health as /healthz reports it: it serves until
// ctx is done, then drains; meanwhile run checks every interval that the
// frontend accepts connections (through accept, when set) and that the L4
// event loops serve their events, and keeps the last failure.
type selfCheck struct {
	ctx      context.Context // done when lbproxy stops accepting
	accept   *acceptProbe    // nil: no accept check
	paused   func() bool     // reports an accept loop held back on purpose (-maxconn, -conn-rate); nil: never
	shared   func() bool     // reports another lbproxy accepting on the socket (-upgrade-socket); nil: never
	interval time.Duration
	logger   *slog.Logger
	failure  atomic.Pointer[string] // the failing check and why; nil: none
	notHeld  atomic.Bool            // the listening address was not this host's at the last check
	// detail, when set, returns a line /healthz adds to its answer
	// without changing its status, such as a configuration store that
	// does not answer while the last good configuration serves ("": none).
	detail func() string
}

// ServeHTTP answers /healthz.
func (c *selfCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch f := c.failure.Load(); {
	case c.ctx.Err() != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
	case f != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, *f+"\n")
	default:
		io.WriteString(w, "ok\n")
	}
	if c.detail != nil {
		if d := c.detail(); d != "" {
			io.WriteString(w, d+"\n")
		}
	}
}

// run checks at once and then every interval, until ctx is done.
func (c *selfCheck) run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *selfCheck) isPaused() bool { return c.paused != nil && c.paused() }

// held reports whether this host holds the address the accept check
// connects to, and logs when that changes.
func (c *selfCheck) held() bool {
	held := c.accept.held()
	if was := !c.notHeld.Swap(!held); was != held {
		if held {
			c.logger.Info("lbproxy: this host now holds the listening address; the accept check runs", "address", c.accept.Addr().String())
		} else {
			c.logger.Info("lbproxy: this host does not hold the listening address; the accept check waits for it", "address", c.accept.Addr().String())
		}
	}
	return held
}

// check runs the checks once and records the outcome.
func (c *selfCheck) check(ctx context.Context) {
	var err error
	// At -maxconn, or beyond -conn-rate, the frontend holds its accepts
	// on purpose: the accept check would fail without anything wrong.
	// An address this host does not hold (a virtual IP bound with
	// -freebind, held by the peer for now) cannot be connected to here:
	// the accept path is checked again once the address arrives.
	if c.accept != nil && !c.isPaused() && c.held() {
		switch err = c.accept.check(ctx, min(acceptTimeout, c.interval)); {
		case err != nil && c.isPaused(): // it filled up during the check
			err = nil
		case err != nil && c.shared != nil && c.shared():
			// During an upgrade the other process may have accepted the
			// check's connection.
			err = nil
		case err != nil:
			err = fmt.Errorf("accept: %w", err)
		}
	}
	if err == nil {
		if err = lb.CheckEventLoops(max(loopStall, c.interval)); err != nil {
			err = fmt.Errorf("event loop: %w", err)
		}
	}
	if ctx.Err() != nil {
		return // draining: the checks' failures say nothing
	}
	if err == nil {
		if c.failure.Swap(nil) != nil {
			c.logger.Warn("lbproxy: self-check passes again")
		}
		return
	}
	msg := err.Error()
	if old := c.failure.Swap(&msg); old == nil || *old != msg {
		c.logger.Warn("lbproxy: self-check failed", "error", msg)
	}
}

// acceptProbe is the listener closest to the socket when the accept check
// runs. The check opens a connection to the listening address and waits
// for the frontend to accept it through every listener layered above;
// acceptProbe then closes it instead of returning it, so check connections
// never reach the frontend and count nowhere (no connection, session or
// byte in the statistics, no ACL or PROXY header decision).
//
// The check binds its socket and records the source address before it
// connects (where the platform allows, see bindProbe), so a connection the
// kernel queued is recognised even when the dial itself gave up: under
// load a dial may time out after the handshake completed, and its
// connection is accepted later all the same.
//
// Accept costs one atomic load per connection while no check is pending.
type acceptProbe struct {
	net.Listener

	active atomic.Int32 // pending check connections

	// shared reports another process accepting on the socket too (a
	// binary upgrade under way); nil: never.
	shared func() bool

	mu      sync.Mutex
	pending map[netip.AddrPort]*probe // check connections by source address
}

// probe is one check connection, pending until it is accepted.
type probe struct {
	accepted chan struct{} // closed when the frontend accepted it
	failed   time.Time     // when its dial failed; zero while it may succeed
}

// staleProbe is how long the entry of a check whose dial failed is kept:
// such a connection may sit in the accept queue, but not for long while
// accept works.
const staleProbe = 30 * time.Second

// Accept returns the next connection that is not the check's.
func (l *acceptProbe) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.active.Load() == 0 {
			return c, err
		}
		if !l.take(c) {
			return c, nil
		}
		c.Close()
	}
}

// take reports whether c is a check connection, and marks it accepted.
func (l *acceptProbe) take(c net.Conn) bool {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	from := unmapPort(ta.AddrPort())
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[from]
	if ok {
		l.remove(from, p)
	}
	return ok
}

// add records a check connection from the source address from; called
// with mu held.
func (l *acceptProbe) add(from netip.AddrPort) *probe {
	p := &probe{accepted: make(chan struct{})}
	if l.pending == nil {
		l.pending = make(map[netip.AddrPort]*probe)
	}
	l.pending[unmapPort(from)] = p
	l.active.Add(1)
	return p
}

// remove forgets the check connection from, marking it accepted; called
// with mu held.
func (l *acceptProbe) remove(from netip.AddrPort, p *probe) {
	delete(l.pending, from)
	l.active.Add(-1)
	close(p.accepted)
}

// check connects to the listening address and waits up to timeout for the
// connection to be accepted.
func (l *acceptProbe) check(ctx context.Context, timeout time.Duration) error {
	l.mu.Lock()
	for from, p := range l.pending {
		if !p.failed.IsZero() && time.Since(p.failed) > staleProbe {
			l.remove(from, p)
		}
	}
	n := len(l.pending)
	l.mu.Unlock()
	if n >= maxProbes {
		return fmt.Errorf("%d earlier check connections still not accepted", maxProbes)
	}

	shared := l.shared != nil && l.shared()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var p *probe
	var from netip.AddrPort
	d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		var err error
		from, err = bindProbe(network, address, rc)
		if err != nil || !from.IsValid() {
			return err
		}
		l.mu.Lock()
		p = l.add(from)
		l.mu.Unlock()
		return nil
	}}
	conn, err := d.DialContext(ctx, "tcp", dialAddr(l.Addr()))
	if err == nil && p == nil {
		// The platform cannot bind before connecting: record the
		// connection now. Until then, Accept hands it to the frontend.
		l.mu.Lock()
		p = l.add(conn.LocalAddr().(*net.TCPAddr).AddrPort())
		l.mu.Unlock()
	}
	if err != nil {
		if p != nil {
			l.mu.Lock()
			if errors.Is(err, syscall.ECONNREFUSED) {
				// Nothing was queued.
				if l.pending[unmapPort(from)] == p {
					l.remove(unmapPort(from), p)
				}
			} else {
				// The kernel may have queued it all the same.
				p.failed = time.Now()
			}
			l.mu.Unlock()
		}
		return fmt.Errorf("connecting to itself: %w", err)
	}
	defer conn.Close()
	select {
	case <-p.accepted:
		return nil
	case <-ctx.Done():
		// The connection stays pending: when the frontend accepts it
		// later, it is closed there. Unless another process accepts on
		// the socket too: it may have taken the connection, and the
		// entry would wait for a client that reuses the port.
		if shared || (l.shared != nil && l.shared()) {
			key := unmapPort(conn.LocalAddr().(*net.TCPAddr).AddrPort())
			l.mu.Lock()
			if l.pending[key] == p {
				l.remove(key, p)
			}
			l.mu.Unlock()
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("connection not accepted within %v", timeout)
		}
		return ctx.Err()
	}
}

// held reports whether this host holds the listening address: an
// unspecified or loopback address, or one assigned to one of its
// interfaces. A listener bound with -freebind (or under the sysctl
// net.ipv4.ip_nonlocal_bind=1) may wait for its address; when the
// interfaces cannot be listed, the address counts as held.
func (l *acceptProbe) held() bool {
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return true
	}
	ip := ta.AddrPort().Addr().Unmap().WithZone("")
	if ip.IsUnspecified() || ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// unmapPort returns ap with an IPv4-mapped address as IPv4.
func unmapPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dialAddr is the address to connect to for a listener on a: a itself, or
// the loopback address of its family when a is unspecified.
func dialAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ap := ta.AddrPort()
	if ip := ap.Addr(); ip.IsUnspecified() {
		lo := netip.IPv6Loopback()
		if ip.Unmap().Is4() {
			lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return ap.String()
}

// startAdmin serves mux on ln in its own http.Server until the returned
// stop is called; stop shuts it down gracefully within grace, then closes
// what is left. The server's goroutine is counted in wg.
func startAdmin(wg *sync.WaitGroup, ln net.Listener, mux http.Handler, grace time.Duration, logger *slog.Logger) (stop func()) {
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("lbproxy: admin server", "error", err)
		}
	})
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), max(grace, 0))
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
}
