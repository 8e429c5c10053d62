package main

// The TLS modes:
//
//	https            HTTPS front (TLS offloading), HTTP/2 and HTTP/1.1 through
//	                 ALPN, plain HTTP to the servers; -cert/-key or a
//	                 generated certificate
//	https-bridge     HTTPS front, HTTPS (HTTP/2 when offered) to the servers,
//	                 verified unless -backend-insecure
//	tls              TLS terminated at L4, plain TCP to the servers
//	tls-bridge       TLS terminated at L4, new TLS sessions to the servers
//	tls-passthrough  L4, the ClientHello peeked for SNI routes (-sni-route),
//	                 the client's TLS session copied to the servers as is
//
// Benchmarks of https-bridge against servers with self-signed certificates
// pass -backend-insecure (or -backend-ca with their CA).

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/demo"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

func init() {
	for _, m := range []string{"https", "https-bridge"} {
		modes[m] = "http"
	}
	for _, m := range []string{"tls", "tls-bridge", "tls-passthrough"} {
		modes[m] = "tcp"
	}
	newFeatures = append(newFeatures, func() feature { return &tlsFeature{} })
}

// tlsFeature configures the TLS modes.
type tlsFeature struct {
	profile          string
	clientCA         string
	reload           time.Duration
	backendCA        string
	backendInsecure  bool
	backendH2        bool
	backendName      string
	backendSNI       bool
	sniRoutes        string
	demoCA           *demo.CA // set when demo servers or a certificate were generated
	demoServersTrust bool     // the demo servers' certificates come from demoCA
}

func (f *tlsFeature) register(fs *flag.FlagSet) {
	fs.StringVar(&f.profile, "tls-profile", "intermediate", "TLS modes: old, intermediate or modern (Mozilla's profiles)")
	fs.StringVar(&f.clientCA, "client-ca", "", "TLS modes: PEM bundle; when set, clients must present a certificate it verifies (mTLS)")
	fs.DurationVar(&f.reload, "cert-reload", 5*time.Second, "TLS modes: how often -cert and -key are checked for changes (0: never)")
	fs.StringVar(&f.backendCA, "backend-ca", "", "bridge modes: PEM bundle verifying the servers' certificates (default: system roots)")
	fs.BoolVar(&f.backendInsecure, "backend-insecure", false, "bridge modes: do not verify the servers' certificates")
	fs.BoolVar(&f.backendH2, "backend-h2", false, "https-bridge: speak HTTP/2 to servers that offer it (default HTTP/1.1)")
	fs.StringVar(&f.backendName, "backend-server-name", "", "bridge modes: server name to send and verify (default: each server's host)")
	fs.BoolVar(&f.backendSNI, "backend-sni", false, "bridge modes: send and verify the client's SNI")
	fs.StringVar(&f.sniRoutes, "sni-route", "", "tls-passthrough: comma-separated SNI routes NAME=ADDR (NAME may be *.domain); others go to -backends")
}

func (f *tlsFeature) ca() (*demo.CA, error) {
	if f.demoCA != nil {
		return f.demoCA, nil
	}
	ca, err := demo.NewCA()
	if err != nil {
		return nil, err
	}
	file, err := ca.WriteCAFile(os.TempDir())
	if err != nil {
		return nil, err
	}
	fmt.Printf("generated a CA for demo certificates: %s\n", file)
	f.demoCA = ca
	return ca, nil
}

// startDemo starts TLS demo servers for the modes whose servers speak TLS.
func (f *tlsFeature) startDemo(ctx context.Context, mode string) (string, bool, error) {
	var start func(*demo.CA) (string, error)
	switch mode {
	case "https-bridge":
		start = func(ca *demo.CA) (string, error) { return demo.HTTPSBackends(ctx, ca, 2) }
	case "tls-bridge", "tls-passthrough":
		start = func(ca *demo.CA) (string, error) { return demo.TLSBackends(ctx, ca, "a.localhost", "b.localhost") }
	default:
		return "", false, nil
	}
	ca, err := f.ca()
	if err != nil {
		return "", false, err
	}
	addrs, err := start(ca)
	if err != nil {
		return "", false, err
	}
	f.demoServersTrust = true
	if mode == "tls-passthrough" && f.sniRoutes == "" {
		a, b, _ := strings.Cut(addrs, ",")
		f.sniRoutes = "a.localhost=" + a + ",b.localhost=" + b
		fmt.Printf("routing a.localhost to %s and b.localhost to %s\n", a, b)
	}
	return addrs, true, nil
}

func (f *tlsFeature) apply(s *stack) error {
	mode := s.cfg.mode
	switch mode {
	case "https", "https-bridge", "tls", "tls-bridge":
	case "tls-passthrough":
		return f.passthrough(s)
	default:
		return nil
	}
	front, err := f.frontend(s)
	if err != nil {
		return err
	}
	var up tlsmode.Upstream
	if strings.HasSuffix(mode, "-bridge") {
		if up, err = f.upstream(); err != nil {
			return err
		}
	}
	switch mode {
	case "https", "https-bridge":
		s.server.TLSConfig = front.HTTPConfig()
		srv := s.server
		s.serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		if mode == "https-bridge" {
			up.BridgeHTTP(s.proxy)
		}
	case "tls", "tls-bridge":
		if mode == "tls-bridge" {
			up.Bridge(s.pool)
		}
		off := tlsmode.Offload(front.ServerConfig(), s.backend)
		off.Logger = s.logger
		s.backend = off
	}
	return nil
}

// frontend builds the certificates and TLS settings clients see.
func (f *tlsFeature) frontend(s *stack) (tlsmode.Config, error) {
	profile, err := tlsmode.ParseProfile(f.profile)
	if err != nil {
		return tlsmode.Config{}, err
	}
	certs := &tlsmode.Store{Logger: s.logger}
	if s.cfg.certFile != "" {
		if err := certs.AddFiles(s.cfg.certFile, s.cfg.keyFile); err != nil {
			return tlsmode.Config{}, err
		}
		if f.reload > 0 {
			s.also = append(s.also, startWatch(certs, f.reload))
		}
	} else {
		ca, err := f.ca()
		if err != nil {
			return tlsmode.Config{}, err
		}
		cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
		if err != nil {
			return tlsmode.Config{}, err
		}
		if err := certs.Add(cert); err != nil {
			return tlsmode.Config{}, err
		}
	}
	cfg := tlsmode.Config{Profile: profile, Certificates: certs}
	if f.clientCA != "" {
		if cfg.ClientCAs, err = tlsmode.LoadCertPool(f.clientCA); err != nil {
			return tlsmode.Config{}, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// upstream builds the TLS settings towards the servers.
func (f *tlsFeature) upstream() (tlsmode.Upstream, error) {
	up := tlsmode.Upstream{ServerName: f.backendName, UseClientSNI: f.backendSNI, InsecureSkipVerify: f.backendInsecure, HTTP2: f.backendH2}
	var err error
	switch {
	case f.backendCA != "":
		up.RootCAs, err = tlsmode.LoadCertPool(f.backendCA)
	case f.demoServersTrust:
		up.RootCAs = f.demoCA.Pool()
	}
	return up, err
}

// passthrough routes connections by SNI without decrypting them.
func (f *tlsFeature) passthrough(s *stack) error {
	mux := &lb.Mux{Default: s.backend}
	for _, r := range strings.Split(f.sniRoutes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		name, addrs, ok := strings.Cut(r, "=")
		if !ok {
			return fmt.Errorf("lbproxy: -sni-route %q: want NAME=ADDR", r)
		}
		servers, err := demo.Servers(addrs)
		if err != nil {
			return fmt.Errorf("lbproxy: -sni-route %q: %w", r, err)
		}
		p := &lb.Pool{Name: name, ConnectTimeout: s.cfg.connectTimeout, TunnelTimeout: s.cfg.timeout, Logger: s.logger}
		if err := p.Update(servers); err != nil {
			return err
		}
		if err := mux.Handle(name, p); err != nil {
			return err
		}
	}
	pt := tlsmode.Passthrough(mux)
	pt.Logger = s.logger
	s.backend = pt
	return nil
}

// certWatch reloads certificate files until shut down.
type certWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startWatch(certs *tlsmode.Store, every time.Duration) *certWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &certWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		certs.Watch(ctx, every)
	}()
	return w
}

func (w *certWatch) Shutdown(ctx context.Context) error {
	w.once.Do(w.cancel)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *certWatch) Close() error {
	w.once.Do(w.cancel)
	<-w.done
	return nil
}
