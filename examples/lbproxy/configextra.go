package main

// What -config mode takes from the command line beyond the document, and
// what it refuses:
//
//	-freebind            frontends bind their -ip addresses (and HTTP/3's
//	                     UDP sockets) even when this host does not hold
//	                     them yet (IP_FREEBIND), as a virtual IP that
//	                     keepalived moves here later
//	-backend-ca          the roots that verify servers reached with
//	                     ssl_bridging, https checks and https failover
//	                     hosts (default: the system roots)
//	-ticket-key-file     the session-ticket secret of documents without
//	                     secrets.session_ticket_secret
//	-cookie-secret-file  the sticky-cookie secret of documents without
//	                     secrets.sticky_cookie_secret
//	-redis ...           backends with sticky_sessions table share their
//	                     table (sticky/redistable) and frontends their
//	                     lbkit client_rate (lb/redisrate) with every
//	                     instance on the same Redis running the same
//	                     document, keyed by -redis-prefix and the
//	                     backend's or frontend's id
//
// The flags that describe flag mode's one frontend and pool (-mode,
// -listen, -backends, -algorithm, -sticky, ... : dataPathFlags) are
// refused, as a usage error (exit status 2), rather than ignored.

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/lb"
	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/tlsmode"
)

// errUsage marks a command line to refuse as flag errors are: main exits
// with status 2.
var errUsage = errors.New("lbproxy: usage")

// dataPathFlags are the flags of flag mode's frontend and pool, which a
// configuration document replaces.
var dataPathFlags = []string{
	"mode", "listen", "backends", "servers-dns", "servers-port", "servers-srv", "dns-server", "dns-interval",
	"algorithm", "cert", "key", "connect-timeout", "timeout", "request-timeout", "client-timeout",
	"min-body-rate", "min-body-rate-grace", "retries", "redispatch-every", "max-conns",
	"max-header-count", "max-body-bytes", "drop-underscore-headers", "health", "health-interval",
	"proxy-protocol", "accept-proxy", "allow", "deny",
	"maxconn", "conn-rate", "conn-rate-burst", "client-maxconn", "client-rate", "client-rate-burst",
	"client-table-size", "client-idle", "client-ipv6-prefix",
	"sticky", "sticky-cookie", "sticky-secret", "sticky-table-size", "sticky-ttl", "sticky-ipv6-prefix",
	"tls-profile", "client-ca", "cert-reload", "backend-insecure", "backend-h2", "backend-server-name",
	"backend-host", "backend-sni", "hsts", "http3", "h2c", "h2-only", "failover-host", "backend-h2c", "sni-route",
}

// refuseDataPathFlags returns a usage error naming the data-path flags
// set on fs, nil when there is none.
func refuseDataPathFlags(fs *flag.FlagSet) error {
	if fs == nil {
		return nil
	}
	var set []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(dataPathFlags, f.Name) {
			set = append(set, "-"+f.Name)
		}
	})
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s describe(s) flag mode's frontend and pool, which -config replaces: set them in the document", errUsage, strings.Join(set, ", "))
}

// extendConfigOptions adds to opts what the command line gives -config
// mode beyond the document; the returned function releases it after the
// runtime closed.
func extendConfigOptions(cfg *config, opts *lbconfig.RuntimeOptions, logger *slog.Logger) (release func(), err error) {
	release = func() {}
	if err := refuseDataPathFlags(cfg.fs); err != nil {
		return release, err
	}
	// -freebind: the sockets of opts.Listen and opts.ListenPacket (see
	// startUpgrade) are opened with IP_FREEBIND; a socket handed over by
	// an upgrade is bound already.
	if cfg.freebind && !freebindSupported {
		return release, errors.New("lbproxy: -freebind needs Linux (IP_FREEBIND)")
	}
	if cfg.backendCA != "" {
		if opts.TLSClientRoots, err = tlsmode.LoadCertPool(cfg.backendCA); err != nil {
			return release, fmt.Errorf("lbproxy: -backend-ca: %w", err)
		}
	}
	if cfg.ticketKeyFile != "" {
		secret, err := readSecretFile(cfg.ticketKeyFile, tlsmode.MinTicketSecret)
		if err != nil {
			return release, fmt.Errorf("lbproxy: -ticket-key-file: %w", err)
		}
		opts.Secrets.SessionTicketSecret = string(secret)
	}
	if cfg.cookieSecretFile != "" {
		secret, err := readSecretFile(cfg.cookieSecretFile, 16)
		if err != nil {
			return release, fmt.Errorf("lbproxy: -cookie-secret-file: %w", err)
		}
		opts.Secrets.StickyCookieSecret = string(secret)
	}
	rdb, err := newRedis(cfg, logger)
	if err != nil {
		return release, err
	}
	if rdb != nil {
		opts.Shared = &redisShared{cfg: cfg, rdb: rdb, logger: logger}
		release = func() { rdb.Close() }
	}
	return release, nil
}

// redisShared is the state -config mode shares through -redis: the stick
// tables of backends with sticky_sessions table and the client rates of
// frontends, each under -redis-prefix and its id in the document.
type redisShared struct {
	cfg    *config
	rdb    *redis.Client
	logger *slog.Logger
}

// StickyTable implements lbconfig.SharedState.
func (s *redisShared) StickyTable(backendID string) (lb.Affinity, error) {
	c := *s.cfg
	c.redisPrefix += "backend:" + backendID + ":"
	t, err := redisTable(&c, s.rdb, nil, s.logger.With("backend", backendID))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ClientRater implements lbconfig.SharedState.
func (s *redisShared) ClientRater(frontendID string, rate float64, burst int) (lb.ClientRater, error) {
	c := *s.cfg
	c.redisPrefix += "frontend:" + frontendID + ":"
	c.clientRate, c.clientRateBurst = rate, burst
	l, err := redisRater(&c, s.rdb, s.logger.With("frontend", frontendID))
	if err != nil {
		return nil, err
	}
	return l, nil
}
