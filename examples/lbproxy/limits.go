package main

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/lb"
)

// newLimits returns the accept-path limits of -maxconn and the -client-*
// flags, or nil when they are all off:
//
//	-maxconn N            the frontend's open connections (HAProxy's
//	                      maxconn); beyond, accepting pauses and new
//	                      connections wait in the kernel's queue
//	-conn-rate R          the frontend's new connections per second
//	                      (connection_rate_limit, HAProxy's rate-limit
//	                      sessions), with -conn-rate-burst; beyond,
//	                      accepting pauses as for -maxconn
//	-client-maxconn N     one client's open connections; beyond, L4
//	                      closes the connection, HTTP answers 429 with
//	                      Connection: close
//	-client-rate R        one client's requests (HTTP) or connections
//	                      (L4) per second, with -client-rate-burst;
//	                      beyond, 429 with Retry-After, or L4 closes
//	                      (with -redis, over the whole fleet: see
//	                      redis.go)
//	-client-table-size, -client-idle, -client-ipv6-prefix
//	                      the table of clients: its bound (when full,
//	                      the least recently seen idle client goes),
//	                      how long an idle client is kept, and the IPv6
//	                      prefix that makes one client
//
// Clients are the addresses after PROXY protocol reception (-accept-proxy).
func newLimits(cfg *config, rdb *redis.Client, logger *slog.Logger) (*lb.Limits, error) {
	switch {
	case cfg.maxConn < 0:
		return nil, fmt.Errorf("lbproxy: -maxconn %d must not be negative", cfg.maxConn)
	case cfg.connRate < 0:
		return nil, fmt.Errorf("lbproxy: -conn-rate %v must not be negative", cfg.connRate)
	case cfg.connRateBurst < 0:
		return nil, fmt.Errorf("lbproxy: -conn-rate-burst %d must not be negative", cfg.connRateBurst)
	case cfg.connRateBurst > 0 && cfg.connRate == 0:
		return nil, fmt.Errorf("lbproxy: -conn-rate-burst needs -conn-rate")
	case cfg.clientMaxConn < 0:
		return nil, fmt.Errorf("lbproxy: -client-maxconn %d must not be negative", cfg.clientMaxConn)
	case cfg.clientRate < 0:
		return nil, fmt.Errorf("lbproxy: -client-rate %v must not be negative", cfg.clientRate)
	case cfg.clientRateBurst < 0:
		return nil, fmt.Errorf("lbproxy: -client-rate-burst %d must not be negative", cfg.clientRateBurst)
	case cfg.clientRateBurst > 0 && cfg.clientRate == 0:
		return nil, fmt.Errorf("lbproxy: -client-rate-burst needs -client-rate")
	case cfg.clientTableSize <= 0:
		return nil, fmt.Errorf("lbproxy: -client-table-size %d must be positive", cfg.clientTableSize)
	case cfg.clientIdle <= 0:
		return nil, fmt.Errorf("lbproxy: -client-idle %v must be positive", cfg.clientIdle)
	case cfg.clientIPv6Prefix < 0 || cfg.clientIPv6Prefix > 128:
		return nil, fmt.Errorf("lbproxy: -client-ipv6-prefix %d must be between 0 and 128", cfg.clientIPv6Prefix)
	}
	if cfg.maxConn == 0 && cfg.connRate == 0 && cfg.clientMaxConn == 0 && cfg.clientRate == 0 {
		return nil, nil
	}
	lim := &lb.Limits{
		MaxConns:         cfg.maxConn,
		ConnRate:         cfg.connRate,
		ConnBurst:        cfg.connRateBurst,
		ClientMaxConns:   cfg.clientMaxConn,
		ClientRate:       cfg.clientRate,
		ClientBurst:      cfg.clientRateBurst,
		ClientIPv6Prefix: cfg.clientIPv6Prefix,
		MaxClients:       cfg.clientTableSize,
		ClientIdle:       cfg.clientIdle,
	}
	if rdb != nil && cfg.clientRate > 0 {
		rl, err := redisRater(cfg, rdb, logger)
		if err != nil {
			return nil, err
		}
		lim.ClientRater = rl
	}
	return lim, nil
}

// holdingAccepts reports whether limits is holding back the accept loop on
// purpose (-maxconn or -conn-rate); false for nil limits.
func holdingAccepts(limits *lb.Limits) bool { return limits != nil && limits.Holding() }
