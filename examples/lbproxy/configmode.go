package main

// Configuration-file mode: -config FILE runs the load balancer a
// configuration document describes (package lb/config: the seed's model of
// frontends, backends, ACLs, routes and certificates, in the API's JSON
// shapes), instead of the one frontend and pool of the flags.
//
//	lbproxy -config lb.json -ip 127.0.0.1 -admin 127.0.0.1:9100
//	lbproxy -config lb.json -check
//
// Every frontend listens on each address of -ip (comma-separated, default
// 127.0.0.1) at its inbound_port, and a backend's servers are its pool
// IPs at its forward_port. The file is watched (polled every second) and
// reloaded on change, and on SIGHUP; a reload converges the running load
// balancer without dropping connections (see config.Runtime), and a file
// that does not load, validate or apply leaves the running configuration
// in place (logged, and counted in /stats's "config" entry). Certificates
// of type letsencrypt are obtained over ACME (TLS-ALPN-01 on the
// frontends that use them, HTTP-01 on plain HTTP frontends, so serve port
// 443 or 80 to the internet) from -acme-directory (default Let's
// Encrypt), with -acme-email as the account's contact and -acme-cache as
// the directory that keeps the account and certificates (default: memory
// only). -check
// validates the file, prints each invalid field and exits 1, or prints
// "configuration valid" and exits 0, as haproxy -c.
//
// The flags of the data path (-mode, -listen, -backends and the others
// that describe one frontend and pool, listed in configextra.go) are
// refused in this mode, as a usage error (exit status 2); -admin,
// -admin-token-file, -grace (the drain of removed frontends, and of all of
// them at exit), -v, -gc-percent, -gc-headroom, -idle-trim, the -access-log
// flags (where frontends with enable_access_logs write), -freebind,
// -backend-ca, -ticket-key-file, -cookie-secret-file, the -redis flags and
// -upgrade-socket (the frontends' TCP and HTTP/3 sockets and -admin's are
// handed over) apply (see configextra.go).
// The admin listener serves /healthz,
// /stats, /metrics and the status page, with every frontend and backend of
// the running document as they come and go.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/lbkit/lbkit/lb"
	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/metrics"
	"github.com/lbkit/lbkit/lb/statuspage"
)

// configFlags are the flags of the configuration-file mode.
type configFlags struct {
	file  string
	check bool
	ips   string

	acmeDirectory, acmeEmail, acmeCache string
}

func addConfigFlags(fs *flag.FlagSet, c *configFlags) {
	fs.StringVar(&c.file, "config", "", "configuration document (JSON, lb/config's model) to run instead of the data-path flags; reloaded when it changes and on SIGHUP. A file, or etcd://HOST:PORT[,HOST:PORT]/KEY (etcds:// for TLS) for a document a fleet shares in etcd (see -config-etcd-*)")
	fs.BoolVar(&c.check, "check", false, "with -config: validate the file, print each invalid field and exit 1, or exit 0")
	fs.StringVar(&c.ips, "ip", "127.0.0.1", "with -config: comma-separated addresses every frontend listens on at its inbound_port")
	fs.StringVar(&c.acmeDirectory, "acme-directory", "", "with -config: ACME directory of letsencrypt certificates (default: Let's Encrypt's production service)")
	fs.StringVar(&c.acmeEmail, "acme-email", "", "with -config: contact address of the ACME account (empty: none)")
	fs.StringVar(&c.acmeCache, "acme-cache", "", "with -config: directory keeping the ACME account and certificates across restarts (empty: memory only, a new certificate at every start)")
}

// errInvalidConfig is -check's failure.
var errInvalidConfig = errors.New("lbproxy: invalid configuration")

// checkConfig loads the file and reports each invalid field on out.
func checkConfig(file string, out io.Writer) error {
	doc, _, err := (&lbconfig.FileStore{Path: file}).Load(context.Background())
	if err != nil {
		return err
	}
	return checkDocument(doc, out)
}

// checkDocument applies the defaults to doc and reports each invalid field
// on out.
func checkDocument(doc *lbconfig.Document, out io.Writer) error {
	doc.ApplyDefaults()
	if err := doc.Validate(); err != nil {
		var ve *lbconfig.ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				fmt.Fprintln(out, f.Error())
			}
			return fmt.Errorf("%w: %d invalid field(s)", errInvalidConfig, len(ve.Fields))
		}
		return err
	}
	fmt.Fprintf(out, "configuration valid: %d frontend(s), %d backend(s)\n", len(doc.Frontends), len(doc.Backends))
	return nil
}

func parseIPs(list string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("lbproxy: -ip: %w", err)
		}
		ips = append(ips, ip)
	}
	if len(ips) == 0 {
		return nil, errors.New("lbproxy: -ip: no address")
	}
	return ips, nil
}

// runConfig serves the configuration file of cfg until ctx is done.
func runConfig(ctx context.Context, cfg *config, out io.Writer) error {
	if cfg.cm.check {
		if cfg.cm.file == "" {
			return errors.New("lbproxy: -check needs -config")
		}
		if isEtcdConfig(cfg.cm.file) {
			return checkEtcdConfig(ctx, cfg, out) // etcd.go
		}
		return checkConfig(cfg.cm.file, out)
	}
	ips, err := parseIPs(cfg.cm.ips)
	if err != nil {
		return err
	}
	if err := checkAccessLog(cfg); err != nil {
		return err
	}
	var token string
	if cfg.admin != "" {
		if token, err = readToken(cfg.adminTokenFile); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	setGCPercent(cfg.gcPercent, cfg.gcHeadroomMiB<<20)

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { idleTrim(ctx, cfg.idleTrim) })

	accessLog, err := openAccessLog(cfg)
	if err != nil {
		return err
	}
	restAPI := newAPIServer(ips, token, logger) // api.go
	// The frontends' sockets (and -admin's), inherited from the process
	// serving -upgrade-socket, if one does (upgrade.go).
	socks, err := startUpgrade(ctx, cfg, logger, out)
	if err != nil {
		return err
	}
	defer socks.close()
	opts := lbconfig.RuntimeOptions{IPs: ips, Logger: logger, DrainGrace: cfg.grace, Listen: socks.Listen, ListenPacket: socks.ListenPacket,
		ACME:          lbconfig.ACMEOptions{DirectoryURL: cfg.cm.acmeDirectory, Email: cfg.cm.acmeEmail, CacheDir: cfg.cm.acmeCache},
		OnServerEvent: restAPI.notifier.Notify, HTTPEngine: cfg.httpEngine, QuickAck: cfg.quickAck,
		// -upgrade-socket: the old process's drain waits for the first
		// request of the HTTP connections it accepted last (upgrade.go).
		ConnState: socks.trackFresh(nil)}
	// -server-tcp-keepalive (keepalive.go); socks sets the client side.
	opts.ServerTCPKeepAlive = tcpKeepAlive(cfg.serverTCPKeepAlive)
	if accessLog != nil {
		defer accessLog.Close()
		opts.AccessLog = accessLog
	}
	release, err := extendConfigOptions(cfg, &opts, logger) // configextra.go
	defer release()
	if err != nil {
		return err
	}
	rt := lbconfig.NewRuntime(opts)
	var closeOnce sync.Once
	closeRuntime := func() { // drains the frontends within -grace
		closeOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
			defer cancel()
			rt.Close(sctx)
		})
	}
	defer closeRuntime()

	// The status page and the metrics follow the frontends and backends
	// of each document applied.
	page := &statuspage.Handler{Title: "lbproxy " + cfg.cm.file}
	collector := &metrics.Collector{}
	if accessLog != nil {
		collector.AddAccessLog("access", accessLog)
	}
	applier := &observedRuntime{rt: rt, page: page, collector: collector}
	store, closeStore, err := configStore(ctx, cfg, logger) // etcd.go: a file, or etcd
	if err != nil {
		return err
	}
	defer closeStore()
	m := &lbconfig.Manager{Store: store, Applier: applier, Logger: logger}
	if err := m.Start(ctx); err != nil {
		return err
	}
	wg.Go(func() { m.Watch(ctx) })
	restAPI.start(ctx, &wg, m, rt)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = m.Reload(ctx) // logged and kept in Status
			}
		}
	})

	if cfg.admin != "" {
		ln, err := socks.Listen(ctx, "tcp", cfg.admin)
		if err != nil {
			return fmt.Errorf("lbproxy: -admin: %w", err)
		}
		check := &selfCheck{ctx: ctx, interval: checkInterval, logger: logger,
			detail: func() string { return configHealthDetail(m) }}
		if cfg.checkInterval > 0 {
			check.interval = cfg.checkInterval
		}
		wg.Go(func() { check.run(ctx) })
		mux := configAdminMux(check, page, collector, token, m, rt)
		mux.Handle("/lb/v1/", restAPI.handler)
		fmt.Fprintf(out, "admin endpoints on http://%s/\n", ln.Addr())
		stop := startAdmin(&wg, ln, mux, cfg.grace, logger)
		defer stop()
	}
	doc, _ := m.Current()
	for _, f := range doc.Frontends {
		for _, a := range rt.Addrs(f.InboundPort) {
			fmt.Fprintf(out, "lbproxy: frontend %s on %s\n", f.ID, a)
		}
	}
	// Serving: the previous process drains, and the next upgrade stops
	// this one the same way.
	if err := socks.ready(ctx, &wg, cancel, logger, out); err != nil {
		return err
	}
	<-ctx.Done()
	closeRuntime() // before the admin server stops, as in the flag mode
	return nil
}

// configAdminMux is the admin mux of the configuration-file mode: the
// endpoints of the flag mode, with the manager's status in /stats.
func configAdminMux(check *selfCheck, page *statuspage.Handler, collector *metrics.Collector, token string, m *lbconfig.Manager, rt *lbconfig.Runtime) *http.ServeMux {
	stats := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			statuspage.Report
			Config lbconfig.ManagerStatus `json:"config"`
		}{page.Report(), m.Status()})
	})
	return adminMux(check, stats, token, configMetrics(collector, m), page)
}

// observedRuntime applies documents with the runtime and keeps the status
// page and the metrics collector in step with the frontends and backends
// that run.
type observedRuntime struct {
	rt        *lbconfig.Runtime
	page      *statuspage.Handler
	collector *metrics.Collector

	mu        sync.Mutex
	frontends map[string]lbconfig.FrontendSource
	pools     map[string]lbconfig.PoolSource
}

// Apply implements config.Applier.
func (o *observedRuntime) Apply(ctx context.Context, doc *lbconfig.Document) error {
	if err := o.rt.Apply(ctx, doc); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fe, pools := o.rt.FrontendSources(), o.rt.PoolSources()
	for name := range o.frontends {
		if fe[name] == nil {
			o.page.RemoveFrontend(name)
			o.collector.RemoveFrontend(name)
		}
	}
	for name := range o.pools {
		if pools[name] == nil {
			o.page.RemovePool(name)
			o.collector.RemovePool(name)
		}
	}
	// Sources are comparable: one added before under the same name is
	// left in place, with the rates the page sampled.
	for name, s := range fe {
		if o.frontends[name] != s {
			o.page.AddFrontend(name, frontendSource(s.Stats))
			o.collector.AddFrontend(name, frontendSource(s.Stats))
		}
	}
	for name, s := range pools {
		if o.pools[name] != s {
			o.page.AddPool(name, poolSource(s.Stats))
			o.collector.AddPool(name, poolSource(s.Stats))
		}
	}
	o.frontends, o.pools = fe, pools
	return nil
}

// poolSource adapts a backend's Stats method value to the sources of the
// status page and the metrics collector.
type poolSource func() lb.PoolStats

// Stats returns f().
func (f poolSource) Stats() lb.PoolStats { return f() }
