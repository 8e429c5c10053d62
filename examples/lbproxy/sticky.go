package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// newAffinity returns the stickiness of -sticky, or nil for none:
//
//	cookie  HTTP modes only: the load balancer sets a cookie naming the
//	        server (an HMAC, not its address), -sticky-cookie NAME keyed
//	        by -sticky-secret HEX or -cookie-secret-file FILE (with
//	        neither, a key is generated at start: cookies then do not
//	        survive a restart nor work across instances, so give every
//	        instance the same one; with the same -backends, in the same
//	        order, they honour each other's cookies without sharing
//	        anything else)
//	table   any mode: the client's IP address pinned in a bounded table
//	        (-sticky-table-size, -sticky-ttl, -sticky-ipv6-prefix); with
//	        -redis the table is shared by the instances (redis.go)
//
// A client whose server is down or draining is balanced again and
// re-pinned; in HTTP modes the response then carries X-Sticky-Moved: 1, and
// -v logs it.
func newAffinity(cfg *config, l7 bool, logger *slog.Logger, rdb *redis.Client) (lb.Affinity, error) {
	if cfg.cookieSecretFile != "" && cfg.sticky != "cookie" {
		return nil, errors.New("lbproxy: -cookie-secret-file needs -sticky cookie")
	}
	onMove := func(info lb.PickInfo, from, to string) {
		logger.Debug("session moved", slog.String("client", info.Client.Addr().String()),
			slog.String("from", from), slog.String("to", to))
	}
	switch cfg.sticky {
	case "", "none":
		return nil, nil
	case "cookie":
		if !l7 {
			return nil, fmt.Errorf("lbproxy: -sticky cookie needs an HTTP mode, not %q", cfg.mode)
		}
		ck := &sticky.Cookie{
			Cookie:      http.Cookie{Name: cfg.stickyCookie, HttpOnly: true, SameSite: http.SameSiteLaxMode},
			MovedHeader: "X-Sticky-Moved",
			OnMove:      onMove,
			Logger:      logger,
		}
		if cfg.cookieSecretFile != "" {
			if cfg.stickySecret != "" {
				return nil, errors.New("lbproxy: -sticky-secret and -cookie-secret-file both give the cookie key: choose one")
			}
			key, err := readSecretFile(cfg.cookieSecretFile, sticky.MinKeySize)
			if err != nil {
				return nil, fmt.Errorf("lbproxy: -cookie-secret-file: %w", err)
			}
			ck.Keys = []sticky.Key{{Secret: key}}
		}
		if cfg.stickySecret != "" {
			key, err := hex.DecodeString(cfg.stickySecret)
			if err != nil {
				return nil, fmt.Errorf("lbproxy: -sticky-secret: %w", err)
			}
			ck.Keys = []sticky.Key{{Secret: key}}
		}
		if err := ck.Validate(); err != nil {
			return nil, fmt.Errorf("lbproxy: %w", err)
		}
		return ck, nil
	case "table":
		if rdb != nil {
			return redisTable(cfg, rdb, onMove, logger)
		}
		table := &sticky.SourceIP{
			MaxEntries:  cfg.stickyTableSize,
			TTL:         cfg.stickyTTL,
			IPv6Prefix:  cfg.stickyIPv6Prefix,
			MovedHeader: "X-Sticky-Moved",
			OnMove:      onMove,
		}
		if err := table.Validate(); err != nil {
			return nil, fmt.Errorf("lbproxy: %w", err)
		}
		return table, nil
	}
	return nil, fmt.Errorf("lbproxy: unknown -sticky %q (want none, cookie or table)", cfg.sticky)
}
