package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/redisrate"
	"github.com/lbkit/lbkit/sticky/redistable"
	"github.com/lbkit/lbkit/tlsmode"
)

// Bounds of the Redis client of -redis: the decisions on the data path
// have their own, shorter ones (redistable.DefaultTimeout,
// redisrate.DefaultTimeout).
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = time.Second
	maxSecretFile    = 4 << 10 // the largest secret or password file read
)

// newRedis returns the client of the Redis server the instances of a
// fleet share (-redis ADDR, -redis-password-file), or nil without -redis:
//
//	-sticky table   the table lives in Redis (sticky/redistable): a
//	                client lands on the same server through every
//	                instance; a local cache answers known clients, and
//	                clients are pinned locally while Redis is away
//	-client-rate R  the rate holds over the fleet (lb/redisrate): each
//	                instance admits R/-redis-instances alone while Redis
//	                is away
//
// Keys start with -redis-prefix. A decision waits for Redis at most
// -redis-timeout (50ms by default). Redis being away never stops traffic:
// the fallbacks count in /metrics (lbkit_shared_fallbacks_total).
func newRedis(cfg *config, logger *slog.Logger) (*redis.Client, error) {
	if cfg.redis == "" {
		switch {
		case cfg.redisPasswordFile != "":
			return nil, errors.New("lbproxy: -redis-password-file without -redis")
		case cfg.redisInstances != 1:
			return nil, errors.New("lbproxy: -redis-instances without -redis")
		case cfg.redisTimeout != redistable.DefaultTimeout:
			return nil, errors.New("lbproxy: -redis-timeout without -redis")
		}
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(cfg.redis); err != nil {
		return nil, fmt.Errorf("lbproxy: -redis %q: %w", cfg.redis, err)
	}
	if cfg.cm.file == "" && cfg.sticky != "table" && cfg.clientRate == 0 { // -config: the document decides
		return nil, errors.New("lbproxy: -redis shares -sticky table and -client-rate between instances: give one of them")
	}
	if cfg.redisTimeout <= 0 {
		return nil, fmt.Errorf("lbproxy: -redis-timeout %v must be positive", cfg.redisTimeout)
	}
	if cfg.redisInstances < 1 {
		return nil, fmt.Errorf("lbproxy: -redis-instances %d must be at least 1", cfg.redisInstances)
	}
	opts := &redis.Options{
		Addr:                  cfg.redis,
		DialTimeout:           redisDialTimeout,
		ReadTimeout:           redisIOTimeout,
		WriteTimeout:          redisIOTimeout,
		ContextTimeoutEnabled: true, // the data path's deadlines hold
	}
	if cfg.redisPasswordFile != "" {
		pw, err := readSecretFile(cfg.redisPasswordFile, 1)
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -redis-password-file: %w", err)
		}
		opts.Password = string(pw)
	}
	// go-redis logs each failed dial; the table and the limiter report
	// Redis being away once per retry period themselves.
	redis.SetLogger(redisLogger{logger})
	return redis.NewClient(opts), nil
}

// redisLogger passes go-redis's messages to the log at Debug (-v).
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.Debug("redis: " + fmt.Sprintf(format, v...))
}

// redisTable returns the stick table of -sticky table shared through rdb.
func redisTable(cfg *config, rdb *redis.Client, onMove func(lb.PickInfo, string, string), logger *slog.Logger) (*redistable.Table, error) {
	table := &redistable.Table{
		Client:      rdb,
		Prefix:      cfg.redisPrefix + "sticky:",
		MaxEntries:  cfg.stickyTableSize,
		TTL:         cfg.stickyTTL,
		IPv6Prefix:  cfg.stickyIPv6Prefix,
		Timeout:     cfg.redisTimeout,
		MovedHeader: "X-Sticky-Moved",
		OnMove:      onMove,
		Logger:      logger,
	}
	if err := table.Validate(); err != nil {
		return nil, fmt.Errorf("lbproxy: %w", err)
	}
	return table, nil
}

// redisRater returns the fleet-wide rate of -client-rate through rdb.
func redisRater(cfg *config, rdb *redis.Client, logger *slog.Logger) (*redisrate.Limiter, error) {
	rl := &redisrate.Limiter{
		Client:     rdb,
		Prefix:     cfg.redisPrefix + "rate:",
		Rate:       cfg.clientRate,
		Burst:      cfg.clientRateBurst,
		Instances:  cfg.redisInstances,
		Timeout:    cfg.redisTimeout,
		MaxClients: cfg.clientTableSize,
		Logger:     logger,
	}
	if err := rl.Validate(); err != nil {
		return nil, fmt.Errorf("lbproxy: %w", err)
	}
	return rl, nil
}

// readSecretFile reads a secret (a key, a password) from a file: its
// content without surrounding white space, at least min bytes, at most
// maxSecretFile.
func readSecretFile(name string, min int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is longer than %d bytes", name, maxSecretFile)
	}
	s := bytes.TrimSpace(b)
	if len(s) < min {
		return nil, fmt.Errorf("%s holds %d bytes, want at least %d", name, len(s), min)
	}
	return s, nil
}

// ticketKeys returns the session ticket keys of the TLS modes: derived
// from -ticket-key-file's secret, the same on every instance that has it,
// or random keys of this process without it.
func ticketKeys(cfg *config) (*tlsmode.TicketKeys, error) {
	keys := &tlsmode.TicketKeys{}
	if cfg.ticketKeyFile != "" {
		secret, err := readSecretFile(cfg.ticketKeyFile, tlsmode.MinTicketSecret)
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -ticket-key-file: %w", err)
		}
		keys.Secret = secret
	}
	return keys, keys.Validate()
}

// runTable writes the bindings of a shared stick table until ctx is done.
func runTable(ctx context.Context, t *redistable.Table) { t.Run(ctx) }
