package main

// A fleet on etcd: with -config etcd://HOST:PORT[,HOST:PORT]/KEY (or
// etcds:// for TLS) lbproxy keeps its configuration document in etcd
// instead of a file (lb/config/etcdstore). Every instance started with the
// same address runs the same document: a write through one instance's API
// is stored with a compare-and-put on the key's revision and reaches the
// others through their etcd watch. Two instances writing at once never
// lose a change silently: one write lands, the other gets 409.
//
// While etcd does not answer, an instance keeps serving its last good
// configuration; /healthz still answers 200 (the instance serves) and adds
// a line naming the store's failure; the metric lbkit_config_store_up is 0
// and lbkit_config_reload_failures_total grows; writes through the API get
// 503. When etcd is back the instance reloads the key and catches up.
//
// Flags:
//
//	-config-etcd-timeout D   bound of each call to etcd (default 2s)
//	-config-etcd-ca FILE     etcds://: PEM bundle verifying etcd's certificate (default: system roots)
//	-config-etcd-cert FILE   etcds://: client certificate (with -config-etcd-key)
//	-config-etcd-key FILE    etcds://: the client certificate's private key
//	-config-etcd-user NAME   etcd user (authentication enabled); the password is $LBKIT_ETCD_PASSWORD
//	-config-etcd-seed FILE   a document stored when the key is absent (the fleet's first start);
//	                         instances that find the key run what it holds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/etcdstore"
	"github.com/lbkit/lbkit/lb/metrics"
)

// etcdPasswordEnv names the environment variable holding the password of
// -config-etcd-user: a password on the command line would show in ps.
const etcdPasswordEnv = "LBKIT_ETCD_PASSWORD"

// etcdFlags are the -config-etcd-* flags.
type etcdFlags struct {
	timeout        time.Duration
	ca, cert, key  string
	user           string
	seed           string
	probeInterval  time.Duration // set by tests only (0: the store's default)
	passwordLookup func(string) (string, bool)
}

// addEtcdFlags defines the -config-etcd-* flags on fs.
func addEtcdFlags(flags *flag.FlagSet) *etcdFlags {
	f := &etcdFlags{passwordLookup: os.LookupEnv}
	flags.DurationVar(&f.timeout, "config-etcd-timeout", etcdstore.DefaultTimeout, "-config etcd://: bound of each call to etcd; a write that exceeds it gets 503")
	flags.StringVar(&f.ca, "config-etcd-ca", "", "-config etcds://: PEM bundle verifying etcd's certificate (default: system roots)")
	flags.StringVar(&f.cert, "config-etcd-cert", "", "-config etcds://: client certificate PEM file presented to etcd (with -config-etcd-key)")
	flags.StringVar(&f.key, "config-etcd-key", "", "-config etcds://: private key PEM file of -config-etcd-cert")
	flags.StringVar(&f.user, "config-etcd-user", "", "-config etcd://: etcd user, for an etcd with authentication; the password is $"+etcdPasswordEnv+" (empty: none)")
	flags.StringVar(&f.seed, "config-etcd-seed", "", "-config etcd://: JSON document stored when the key is absent, on a fleet's first start; an instance that finds the key runs what it holds (empty: a missing key is an error)")
	return f
}

// isEtcdConfig reports whether a -config value names a document in etcd.
func isEtcdConfig(spec string) bool {
	return strings.HasPrefix(spec, "etcd://") || strings.HasPrefix(spec, "etcds://")
}

// openEtcdStore returns the store of -config etcd://..., which the caller
// closes. It does not wait for etcd.
func openEtcdStore(spec string, f *etcdFlags, logger *slog.Logger) (*etcdstore.Store, error) {
	opts, err := etcdstore.ParseURL(spec)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -config: %w", err)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("lbproxy: -config-etcd-timeout %v must be positive", f.timeout)
	}
	opts.Timeout, opts.ProbeInterval, opts.Logger = f.timeout, f.probeInterval, logger
	if opts.TLS == nil && (f.ca != "" || f.cert != "" || f.key != "") {
		return nil, errors.New("lbproxy: -config-etcd-ca, -config-etcd-cert and -config-etcd-key need an etcds:// address")
	}
	if opts.TLS != nil {
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, fmt.Errorf("lbproxy: -config-etcd-ca: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("lbproxy: -config-etcd-ca: no certificate in %s", f.ca)
			}
			opts.TLS.RootCAs = roots
		}
		if (f.cert == "") != (f.key == "") {
			return nil, errors.New("lbproxy: -config-etcd-cert and -config-etcd-key go together")
		}
		if f.cert != "" {
			cert, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, fmt.Errorf("lbproxy: -config-etcd-cert: %w", err)
			}
			opts.TLS.Certificates = []tls.Certificate{cert}
		}
	}
	if f.user != "" {
		pw, ok := f.passwordLookup(etcdPasswordEnv)
		if !ok || pw == "" {
			return nil, fmt.Errorf("lbproxy: -config-etcd-user needs the password in $%s", etcdPasswordEnv)
		}
		opts.Username, opts.Password = f.user, pw
	}
	s, err := etcdstore.New(opts)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -config: %w", err)
	}
	return s, nil
}

// seedEtcd stores the document of -config-etcd-seed when the key is
// absent. Instances seeding at once race through the store's
// compare-and-put: one document lands and the others run it.
func seedEtcd(ctx context.Context, s lbconfig.Store, f *etcdFlags, logger *slog.Logger) error {
	if f.seed == "" {
		return nil
	}
	_, _, err := s.Load(ctx)
	if !errors.Is(err, fs.ErrNotExist) {
		return nil // stored, or an error Start reports
	}
	data, err := os.ReadFile(f.seed)
	if err != nil {
		return fmt.Errorf("lbproxy: -config-etcd-seed: %w", err)
	}
	doc, err := lbconfig.Load(data)
	if err != nil {
		return fmt.Errorf("lbproxy: -config-etcd-seed %s: %w", f.seed, err)
	}
	// One secret for the fleet, so that any instance reads the sticky
	// cookies of the others (a Manager's writes add one too).
	doc.EnsureSecrets()
	switch _, err := s.Save(ctx, doc, ""); {
	case err == nil:
		logger.Info("lbproxy: stored the seed configuration in etcd", "file", f.seed)
	case errors.Is(err, lbconfig.ErrConflict): // another instance seeded first
	default:
		return fmt.Errorf("lbproxy: -config-etcd-seed: %w", err)
	}
	return nil
}

// storeDown reports whether the configuration store of m does not
// answer, since when (zero: unknown) and why. An etcd store says so itself
// as soon as a call or its probe fails; for other stores the Manager's
// last reload does.
func storeDown(m *lbconfig.Manager) (down bool, since time.Time, why string) {
	if es, ok := m.Store.(*etcdstore.Store); ok {
		h := es.Health()
		if !h.Up && h.Err != nil {
			return true, h.Since, h.Err.Error()
		}
		return false, time.Time{}, ""
	}
	st := m.Status()
	return st.StoreUnavailable, time.Time{}, st.LastError
}

// configCollector exposes the state of the configuration and its store to
// Prometheus, read at each scrape:
//
//	lbkit_config_store_up                 1 while the store answers, 0 while it does not (storeDown)
//	lbkit_config_reloads_total            reloads from the store (watch, SIGHUP)
//	lbkit_config_reload_failures_total    reloads that failed (store down, invalid, not applied)
//	lbkit_config_last_applied_timestamp_seconds  when the running document was applied
type configCollector struct {
	m *lbconfig.Manager

	up, reloads, failures, applied *prometheus.Desc
}

func newConfigCollector(m *lbconfig.Manager) *configCollector {
	return &configCollector{
		m:        m,
		up:       prometheus.NewDesc("lbkit_config_store_up", "Whether the configuration store answers (1) or not (0); while it does not, the last good configuration runs.", nil, nil),
		reloads:  prometheus.NewDesc("lbkit_config_reloads_total", "Reloads of the configuration from its store.", nil, nil),
		failures: prometheus.NewDesc("lbkit_config_reload_failures_total", "Reloads of the configuration that failed: store unavailable, document invalid or not applied.", nil, nil),
		applied:  prometheus.NewDesc("lbkit_config_last_applied_timestamp_seconds", "When the running configuration was applied, in seconds since the epoch.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *configCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.reloads
	ch <- c.failures
	ch <- c.applied
}

// Collect implements prometheus.Collector.
func (c *configCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.Status()
	up := 1.0
	if down, _, _ := storeDown(c.m); down {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.Reloads))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures))
	if !st.Applied.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(st.Applied.UnixNano())/1e9)
	}
}

// configHealthDetail is the line /healthz adds about the configuration
// store of m: empty while it answers, else that it does not, since when
// and why, and the version still running. The status stays 200: the
// instance serves its last good configuration.
func configHealthDetail(m *lbconfig.Manager) string {
	down, since, why := storeDown(m)
	if !down {
		return ""
	}
	when := ""
	if !since.IsZero() {
		when = " since " + since.UTC().Format(time.RFC3339)
	}
	_, v := m.Current()
	return fmt.Sprintf("config store unavailable%s: serving the last good configuration (version %s); last error: %s", when, v, why)
}

// configStore returns the store -config names: etcd for an etcd:// or
// etcds:// address (after -config-etcd-seed), else the file. The caller
// calls closeStore once the Manager is done with it.
func configStore(ctx context.Context, cfg *config, logger *slog.Logger) (s lbconfig.Store, closeStore func(), err error) {
	if !isEtcdConfig(cfg.cm.file) {
		return &lbconfig.FileStore{Path: cfg.cm.file}, func() {}, nil
	}
	es, err := openEtcdStore(cfg.cm.file, cfg.etcd, logger)
	if err != nil {
		return nil, nil, err
	}
	if err := seedEtcd(ctx, es, cfg.etcd, logger); err != nil {
		es.Close()
		return nil, nil, err
	}
	return es, func() { es.Close() }, nil
}

// checkEtcdConfig is -check for a document in etcd.
func checkEtcdConfig(ctx context.Context, cfg *config, out io.Writer) error {
	s, err := openEtcdStore(cfg.cm.file, cfg.etcd, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer s.Close()
	doc, _, err := s.Load(ctx)
	if err != nil {
		return err
	}
	return checkDocument(doc, out)
}

// configMetrics serves the metrics of collector and those of the
// configuration (configCollector) from one registry.
func configMetrics(collector *metrics.Collector, m *lbconfig.Manager) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector, newConfigCollector(m))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
