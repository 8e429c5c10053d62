package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// Sticky sessions:
//
//	-sticky none|cookie|table   none (default); cookie: HTTP modes only, the
//	                            load balancer sets a cookie naming the server
//	                            (an HMAC, not its address); table: the
//	                            client's IP address pinned in a bounded table,
//	                            any mode
//	-sticky-cookie NAME         the cookie's name (default LBSTICKY)
//	-sticky-secret HEX          the cookie key, hex-encoded, at least 16 bytes;
//	                            empty generates one at start (cookies then do
//	                            not survive a restart nor work across
//	                            instances: give every instance the same one)
//	-sticky-table-size N        table: most clients remembered (LRU beyond)
//	-sticky-ttl D               table: how long an unused pin lives
//	-sticky-ipv6-prefix BITS    table: pin IPv6 clients by prefix (64: per /64)
//
// A client whose server is down or draining is balanced again and re-pinned;
// in HTTP modes the response then carries X-Sticky-Moved: 1, and -v logs it.
func init() {
	newFeatures = append(newFeatures, func() feature { return &stickyFeature{} })
}

type stickyFeature struct {
	kind, cookie, secret string
	tableSize, v6Prefix  int
	ttl                  time.Duration
}

func (f *stickyFeature) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kind, "sticky", "none", "sticky sessions: none, cookie (HTTP modes) or table (client IP)")
	fs.StringVar(&f.cookie, "sticky-cookie", sticky.DefaultCookieName, "name of the sticky cookie")
	fs.StringVar(&f.secret, "sticky-secret", "", "hex-encoded sticky cookie key, at least 16 bytes (share it between instances); empty generates one")
	fs.IntVar(&f.tableSize, "sticky-table-size", sticky.DefaultMaxEntries, "sticky table: most clients remembered")
	fs.DurationVar(&f.ttl, "sticky-ttl", sticky.DefaultTTL, "sticky table: lifetime of an unused pin")
	fs.IntVar(&f.v6Prefix, "sticky-ipv6-prefix", 0, "sticky table: pin IPv6 clients by this prefix length (0: whole address)")
}

func (f *stickyFeature) apply(s *stack) error {
	onMove := func(info lb.PickInfo, from, to string) {
		s.logger.Debug("session moved", slog.String("client", info.Client.Addr().String()),
			slog.String("from", from), slog.String("to", to))
	}
	switch f.kind {
	case "", "none":
		return nil
	case "cookie":
		if s.kind != "http" {
			return fmt.Errorf("lbproxy: -sticky cookie needs an HTTP mode, not %q", s.cfg.mode)
		}
		ck := &sticky.Cookie{
			Cookie:      http.Cookie{Name: f.cookie, HttpOnly: true, SameSite: http.SameSiteLaxMode},
			MovedHeader: "X-Sticky-Moved",
			OnMove:      onMove,
			Logger:      s.logger,
		}
		if f.secret != "" {
			key, err := hex.DecodeString(f.secret)
			if err != nil {
				return fmt.Errorf("lbproxy: -sticky-secret: %w", err)
			}
			ck.Keys = []sticky.Key{{Secret: key}}
		}
		if err := ck.Validate(); err != nil {
			return fmt.Errorf("lbproxy: %w", err)
		}
		s.pool.Affinity = ck
	case "table":
		table := &sticky.SourceIP{
			MaxEntries:  f.tableSize,
			TTL:         f.ttl,
			IPv6Prefix:  f.v6Prefix,
			MovedHeader: "X-Sticky-Moved",
			OnMove:      onMove,
		}
		if err := table.Validate(); err != nil {
			return fmt.Errorf("lbproxy: %w", err)
		}
		s.pool.Affinity = table
	default:
		return fmt.Errorf("lbproxy: unknown -sticky %q (want none, cookie or table)", f.kind)
	}
	return nil
}
