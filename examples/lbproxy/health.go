package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/lbkit/lbkit/health"
)

// maxHealthArg bounds a -health argument (a path or a user name).
const maxHealthArg = 256

// parseHealth parses a -health value: tcp, http[:/PATH], https[:/PATH],
// mysql[:USER], pgsql[:USER], redis or ldap, as in
//
//	lbproxy -health http:/healthz -health-interval 2s -backends ...
//	lbproxy -mode tcp -health pgsql:lb -backends 10.0.0.1:5432,10.0.0.2:5432
//
// A path or user name is at most maxHealthArg bytes, without spaces or
// control characters. tlsConfig gives the configuration
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
