package main

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbkit/lbkit/internal/testservers"
	tu "github.com/lbkit/lbkit/internal/testutil"
	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/etcdstore"
)

func etcdFlagsOf(t *testing.T, args ...string) *etcdFlags {
	t.Helper()
	fs := flag.NewFlagSet("lbproxy", flag.ContinueOnError)
	f := addEtcdFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	f.passwordLookup = func(string) (string, bool) { return "", false }
	return f
}

func TestEtcdFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		spec string
		args []string
		want string
	}{
		{"etcd://127.0.0.1", nil, "HOST:PORT"},
		{"etcd://127.0.0.1:2379/k", []string{"-config-etcd-ca", "ca.pem"}, "need an etcds://"},
		{"etcds://127.0.0.1:2379/k", []string{"-config-etcd-cert", "c.pem"}, "go together"},
		{"etcds://127.0.0.1:2379/k", []string{"-config-etcd-ca", "/nonexistent/ca.pem"}, "-config-etcd-ca"},
		{"etcd://127.0.0.1:2379/k", []string{"-config-etcd-user", "lb"}, etcdPasswordEnv},
		{"etcd://127.0.0.1:2379/k", []string{"-config-etcd-timeout", "0s"}, "must be positive"},
	} {
		_, err := openEtcdStore(tc.spec, etcdFlagsOf(t, tc.args...), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want an error with %q", tc.spec, tc.args, err, tc.want)
		}
	}
	if !isEtcdConfig("etcd://h:1/k") || !isEtcdConfig("etcds://h:1/k") || isEtcdConfig("/etc/lbkit/lb.json") {
		t.Error("isEtcdConfig")
	}
}

type nopApplier struct{}

func (nopApplier) Apply(context.Context, *lbconfig.Document) error { return nil }

// TestConfigCollector: the metrics and the /healthz line follow etcd
// going down and coming back, through a Manager watching the store.
func TestConfigCollector(t *testing.T) {
	srv := testservers.Etcd(t)
	f := etcdFlagsOf(t, "-config-etcd-timeout", "1s")
	f.probeInterval = 50 * time.Millisecond
	quiet := slog.New(slog.DiscardHandler)
	s, err := openEtcdStore("etcd://"+srv.Addr+"/lbkit/test", f, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	doc, err := lbconfig.Load([]byte(`{"lb": {"id": "lb-1", "name": "demo"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(t.Context(), doc, ""); err != nil {
		t.Fatal(err)
	}
	m := &lbconfig.Manager{Store: s, Applier: nopApplier{}, Logger: quiet}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Watch(ctx) }()
	defer func() { cancel(); <-done }()

	c := newConfigCollector(m)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	value := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if value("lbkit_config_store_up") != 1 || value("lbkit_config_reload_failures_total") != 0 {
		t.Fatal("store down or failures before any")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 4 {
		t.Fatalf("%d metrics (%v), want 4", n, err)
	}
	if d := configHealthDetail(m); d != "" {
		t.Fatalf("health detail while etcd answers: %q", d)
	}

	t0 := time.Now()
	srv.Stop(t)
	tu.Eventually(t, "store_up 0", func() bool { return value("lbkit_config_store_up") == 0 })
	t.Logf("down seen in %v", time.Since(t0))
	tu.Eventually(t, "a reload failure counted", func() bool { return value("lbkit_config_reload_failures_total") >= 1 })
	if !m.Status().StoreUnavailable {
		t.Fatal("the manager's status does not say the store is unavailable")
	}
	d := configHealthDetail(m)
	if !strings.Contains(d, "config store unavailable since ") || !strings.Contains(d, lbconfig.ErrUnavailable.Error()) {
		t.Fatalf("health detail while etcd is down: %q", d)
	}
	t0 = time.Now()
	srv.Start(t)
	t.Logf("etcd restarted in %v", time.Since(t0))
	tu.Eventually(t, "store_up 1", func() bool { return value("lbkit_config_store_up") == 1 })
	t.Logf("up seen in %v", time.Since(t0))
	if d := configHealthDetail(m); d != "" {
		t.Fatalf("health detail once etcd is back: %q", d)
	}
}

// TestSeedEtcd: instances seeding an empty key at once store one document,
// with a sticky-cookie secret, and a stored key is never overwritten.
func TestSeedEtcd(t *testing.T) {
	srv := testservers.Etcd(t)
	quiet := slog.New(slog.DiscardHandler)
	seed := filepath.Join(t.TempDir(), "lb.json")
	if err := os.WriteFile(seed, []byte(`{"lb": {"id": "lb-1", "name": "seed"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stores := make([]*etcdstore.Store, 3)
	for i := range stores {
		s, err := openEtcdStore("etcd://"+srv.Addr+"/lbkit/seed", etcdFlagsOf(t, "-config-etcd-seed", seed), quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = seedEtcd(t.Context(), s, etcdFlagsOf(t, "-config-etcd-seed", seed), quiet) })
	}
	wg.Wait()
	var versions []lbconfig.Version
	var secret string
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		d, v, err := s.Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if d.LB.Name != "seed" || d.Secrets.StickyCookieSecret == "" || (secret != "" && d.Secrets.StickyCookieSecret != secret) {
			t.Fatalf("store %d: name %q secret %q (others %q)", i, d.LB.Name, d.Secrets.StickyCookieSecret, secret)
		}
		secret = d.Secrets.StickyCookieSecret
		versions = append(versions, v)
	}
	if len(slices.Compact(versions)) != 1 {
		t.Fatalf("versions %v: the seed was stored more than once", versions)
	}
	// A later start with another seed keeps what is stored.
	if err := os.WriteFile(seed, []byte(`{"lb": {"id": "lb-1", "name": "other"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := seedEtcd(t.Context(), stores[0], etcdFlagsOf(t, "-config-etcd-seed", seed), quiet); err != nil {
		t.Fatal(err)
	}
	if d, v, err := stores[1].Load(t.Context()); err != nil || d.LB.Name != "seed" || v != versions[0] {
		t.Fatalf("after a second seed: %v %q %q", err, d.LB.Name, v)
	}

	// -check reads the document from etcd.
	var out strings.Builder
	if err := run(t.Context(), withFlags(t, "-config", "etcd://"+srv.Addr+"/lbkit/seed", "-check"), &out); err != nil || !strings.Contains(out.String(), "configuration valid") {
		t.Fatalf("-check of the stored document: %v, %q", err, out.String())
	}
	if err := run(t.Context(), withFlags(t, "-config", "etcd://"+srv.Addr+"/lbkit/none", "-check"), &out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("-check of a missing key: %v", err)
	}
}

// TestEtcdTLS: etcds:// with -config-etcd-ca, -config-etcd-cert and
// -config-etcd-key reaches an etcd that requires client certificates;
// without the client certificate the store is unavailable.
func TestEtcdTLS(t *testing.T) {
	ca := tu.NewCA(t)
	serverCert, serverKey := tu.WritePEM(t, ca.Leaf(t, "127.0.0.1"))
	clientCert, clientKey := tu.WritePEM(t, ca.ClientCert(t, "lbproxy"))
	caFile := ca.WriteCAFile(t)
	srv := testservers.EtcdTLS(t, serverCert, serverKey, caFile)
	quiet := slog.New(slog.DiscardHandler)
	spec := "etcds://" + srv.Addr + "/lbkit/tls"

	s, err := openEtcdStore(spec, etcdFlagsOf(t, "-config-etcd-ca", caFile,
		"-config-etcd-cert", clientCert, "-config-etcd-key", clientKey, "-config-etcd-timeout", "1s"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	doc, err := lbconfig.Load([]byte(`{"lb": {"id": "lb-1", "name": "tls"}}`))
	if err != nil {
		t.Fatal(err)
	}
	// The member may still be electing itself: a first write waits for it.
	var v lbconfig.Version
	tu.Eventually(t, "a write over TLS", func() bool {
		v, err = s.Save(t.Context(), doc, "")
		return err == nil
	})
	if d, got, err := s.Load(t.Context()); err != nil || got != v || d.LB.Name != "tls" {
		t.Fatalf("Load over TLS: %v %q", err, got)
	}

	// No client certificate: refused at the handshake, unavailable.
	anon, err := openEtcdStore(spec, etcdFlagsOf(t, "-config-etcd-ca", caFile, "-config-etcd-timeout", "500ms"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, _, err := anon.Load(t.Context()); !errors.Is(err, lbconfig.ErrUnavailable) {
		t.Fatalf("Load without a client certificate: %v, want ErrUnavailable", err)
	}
	// Not trusting etcd's CA: the same.
	other, err := openEtcdStore(spec, etcdFlagsOf(t, "-config-etcd-cert", clientCert, "-config-etcd-key", clientKey, "-config-etcd-timeout", "500ms"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, _, err := other.Load(t.Context()); !errors.Is(err, lbconfig.ErrUnavailable) {
		t.Fatalf("Load without trusting etcd's CA: %v, want ErrUnavailable", err)
	}
}
