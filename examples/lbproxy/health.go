package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/lbkit/lbkit/health"
)

// The health feature: active checks of the servers (-health KIND[:ARG]),
// every -health-interval.
//
//	lbproxy -health http:/healthz -health-interval 2s -backends ...
//	lbproxy -mode tcp -health pgsql:lb -backends 10.0.0.1:5432,10.0.0.2:5432
func init() { newFeatures = append(newFeatures, func() feature { return &healthFeature{} }) }

type healthFeature struct {
	spec     string
	interval time.Duration
}

func (h *healthFeature) register(fs *flag.FlagSet) {
	fs.StringVar(&h.spec, "health", "", "health check: tcp, http:/PATH, https:/PATH, mysql[:USER], pgsql[:USER], redis, ldap (empty: none)")
	fs.DurationVar(&h.interval, "health-interval", health.DefaultInterval, "time between health checks of an up server")
}

func (h *healthFeature) apply(s *stack) error {
	if h.spec == "" {
		return nil
	}
	if h.interval <= 0 {
		return fmt.Errorf("lbproxy: -health-interval %v must be positive", h.interval)
	}
	probe, err := parseHealth(h.spec, func() *tls.Config {
		if s.proxy != nil && s.proxy.TLSClientConfig != nil {
			return s.proxy.TLSClientConfig
		}
		return &tls.Config{}
	})
	if err != nil {
		return err
	}
	// Checks dial as the pool does and send the LOCAL form of whatever
	// PROXY header it writes, read when the pool runs, after every feature
	// applied.
	s.pool.HealthChecker = &health.Monitor{
		Probe:             probe,
		Interval:          h.interval,
		TransientInterval: min(health.DefaultTransientInterval, h.interval),
		Logger:            s.logger,
	}
	return nil
}

// maxHealthArg bounds a -health argument (a path or a user name).
const maxHealthArg = 256

// parseHealth parses a -health value. tlsConfig gives the configuration
// towards the servers at check time, for https.
func parseHealth(spec string, tlsConfig func() *tls.Config) (health.Probe, error) {
	kind, arg, hasArg := strings.Cut(spec, ":")
	bad := func(why string) error { return fmt.Errorf("lbproxy: -health %q: %s", spec, why) }
	if len(arg) > maxHealthArg {
		return nil, bad("argument too long")
	}
	for _, r := range arg {
		if r <= ' ' || r == 0x7f {
			return nil, bad("control character or space in the argument")
		}
	}
	if hasArg && arg == "" {
		return nil, bad("empty argument")
	}
	switch kind {
	case "tcp", "redis", "ldap":
		if hasArg {
			return nil, bad(kind + " takes no argument")
		}
		switch kind {
		case "tcp":
			return health.TCP{}, nil
		case "redis":
			return health.Redis{}, nil
		}
		return health.LDAP{}, nil
	case "http", "https":
		path := "/"
		if hasArg {
			if !strings.HasPrefix(arg, "/") {
				return nil, bad("the path must start with /")
			}
			path = arg
		}
		if kind == "http" {
			return health.HTTP{Path: path}, nil
		}
		return health.ProbeFunc(func(ctx context.Context, t health.Target) error {
			return health.HTTP{Path: path, TLS: tlsConfig()}.Check(ctx, t)
		}), nil
	case "mysql":
		return health.MySQL{User: arg}, nil
	case "pgsql":
		return health.PostgreSQL{User: arg}, nil
	}
	return nil, bad("unknown kind (want tcp, http, https, mysql, pgsql, redis or ldap)")
}
