package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/dnsservers"
)

// Servers from DNS (lb/dnsservers):
//
//	lbproxy -servers-dns web.internal:8080 [-dns-server 10.0.0.53:53] [-dns-interval 30s]
//	lbproxy -servers-dns web.internal -servers-port 8080
//	lbproxy -servers-srv _http._tcp.web.internal
//
// -servers-dns NAME[:PORT] takes the pool's servers from NAME's A and AAAA
// records, each address at PORT (or -servers-port); -servers-srv NAME from
// an SRV record, each target's addresses at the record's port, with its
// weight, the records of the lowest priority as regular servers and those
// of higher priorities as backups. Both are re-resolved every
// -dns-interval, or sooner when the records' TTL is shorter (but not more
// than once a second); a failed resolution keeps the current servers, and
// servers that stay in DNS keep their state (health, counters,
// connections). Servers are named by address ("10.0.0.1:8080"). DNS
// queries go to -dns-server, or to /etc/resolv.conf's nameservers. The
// first resolution happens before lbproxy serves: if it fails, lbproxy
// does not start. They exclude -backends, and demo backends are not
// started.

// dnsSource returns the source of the servers from the DNS flags, nil when
// none is set.
func dnsSource(cfg *config, logger *slog.Logger) (*dnsservers.Source, error) {
	if cfg.serversDNS == "" && cfg.serversSRV == "" {
		for flag, set := range map[string]bool{"-servers-port": cfg.serversPort != 0, "-dns-server": cfg.dnsServer != ""} {
			if set {
				return nil, fmt.Errorf("lbproxy: %s needs -servers-dns or -servers-srv", flag)
			}
		}
		return nil, nil
	}
	if cfg.backends != "" {
		return nil, errors.New("lbproxy: -backends and -servers-dns or -servers-srv both name the servers: choose one")
	}
	if cfg.serversDNS != "" && cfg.serversSRV != "" {
		return nil, errors.New("lbproxy: -servers-dns and -servers-srv both name the servers: choose one")
	}
	if cfg.dnsInterval <= 0 {
		return nil, fmt.Errorf("lbproxy: -dns-interval %v must be positive", cfg.dnsInterval)
	}
	src := &dnsservers.Source{
		Server:   cfg.dnsServer,
		Interval: cfg.dnsInterval,
		Template: lb.Server{MaxConns: cfg.maxConns},
		Logger:   logger,
	}
	if cfg.serversSRV != "" {
		if cfg.serversPort != 0 {
			return nil, errors.New("lbproxy: -servers-port is for -servers-dns; SRV records carry their ports")
		}
		src.Name, src.SRV = cfg.serversSRV, true
	} else {
		name, port := cfg.serversDNS, cfg.serversPort
		if host, p, err := net.SplitHostPort(name); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("lbproxy: -servers-dns %q: bad port", cfg.serversDNS)
			}
			if port != 0 && port != n {
				return nil, fmt.Errorf("lbproxy: -servers-dns %q and -servers-port %d give two ports", cfg.serversDNS, port)
			}
			name, port = host, n
		}
		if port == 0 {
			return nil, fmt.Errorf("lbproxy: -servers-dns %q needs a port: NAME:PORT or -servers-port", cfg.serversDNS)
		}
		src.Name, src.Port = name, port
	}
	return src, nil
}

// firstResolution bounds the resolution before serving.
const firstResolution = 30 * time.Second

// resolveServers resolves src once and reports the servers to out.
func resolveServers(ctx context.Context, src *dnsservers.Source, out io.Writer) ([]lb.Server, error) {
	ctx, cancel := context.WithTimeout(ctx, firstResolution)
	defer cancel()
	servers, err := src.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: servers from DNS: %w", err)
	}
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = s.Name
		if s.Backup {
			names[i] += " (backup)"
		}
	}
	fmt.Fprintf(out, "servers from DNS %s: %s\n", src.Name, strings.Join(names, ", "))
	return servers, nil
}
