package tlsmode_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/tlsmode"
)

func TestStoreChoosesBySNI(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	s := storeOf(t,
		ca.Leaf(t, "default.test"),
		ca.Leaf(t, "*.example.test"),
		ca.Leaf(t, "www.example.test", "api.test"),
	)
	tests := []struct{ sni, want string }{
		{"www.example.test", "www.example.test"}, // exact beats wildcard
		{"WWW.Example.Test", "www.example.test"}, // case-insensitive
		{"api.test", "www.example.test"},         // second name of a certificate
		{"shop.example.test", "*.example.test"},  // wildcard
		{"a.b.example.test", "default.test"},     // wildcards cover one label
		{"example.test", "default.test"},
		{"unknown.test", "default.test"},
		{"", "default.test"}, // no SNI
	}
	// Through a real handshake with a Go client.
	addr := serveL4(t, tlsmode.Offload(tlsmode.Config{Certificates: s}.ServerConfig(), pool(t, testutil.NameServer(t, "n").Addr)))
	for _, tt := range tests {
		cfg := &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true}
		if tt.sni == "" {
			cfg.ServerName = "127.0.0.1" // no SNI
		}
		_, st, err := greeting(t, addr, cfg)
		if err != nil {
			t.Fatalf("%q: %v", tt.sni, err)
		}
		if got := st.PeerCertificates[0].Subject.CommonName; got != tt.want {
			t.Errorf("%q: got certificate %q, want %q", tt.sni, got, tt.want)
		}
	}
	hello := &tls.ClientHelloInfo{ServerName: "shop.example.test"}
	if n := testing.AllocsPerRun(100, func() { s.GetCertificate(hello) }); n != 0 {
		t.Errorf("GetCertificate allocates %v times", n)
	}
	if _, err := (&tlsmode.Store{}).GetCertificate(hello); !errors.Is(err, tlsmode.ErrNoCertificate) {
		t.Errorf("empty store: %v, want ErrNoCertificate", err)
	}
}

func TestStorePEMFiles(t *testing.T) {
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "two.test"))
	cert, _ := os.ReadFile(certFile)
	key, _ := os.ReadFile(keyFile)
	dir := t.TempDir()
	combined := filepath.Join(dir, "combined.pem")
	os.WriteFile(combined, append(append([]byte{}, cert...), key...), 0o600)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	tests := []struct {
		name, cert, key string
		wantErr         error
	}{
		{"two files", certFile, keyFile, nil},
		{"one file", combined, "", nil},
		{"one file named twice", combined, combined, nil},
		{"bad pem", garbage, "", tlsmode.ErrPEM},
		{"key only", keyFile, keyFile, tlsmode.ErrPEM},
		{"missing", filepath.Join(dir, "nope.pem"), "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &tlsmode.Store{}
			err := s.AddFiles(tt.cert, tt.key)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c := s.Lookup("two.test"); c == nil || c.Leaf.Subject.CommonName != "two.test" {
				t.Errorf("lookup: %v", c)
			}
		})
	}
}

// writeAtomic replaces file's content the way deployment tools do: a new
// file renamed over the old one.
func writeAtomic(t *testing.T, file string, data []byte) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestStoreReloadUnderLoad rotates the certificate files while clients
// handshake without pause: every handshake succeeds, and new handshakes get
// the new certificate.
func TestStoreReloadUnderLoad(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write := func(gen int) {
		c, k := testutil.WritePEM(t, ca.Leaf(t, "rot.test", fmt.Sprintf("gen-%d.test", gen)))
		cb, _ := os.ReadFile(c)
		kb, _ := os.ReadFile(k)
		// Key first: for a moment the pair does not match, and the
		// reload must keep the old certificate.
		writeAtomic(t, keyFile, kb)
		writeAtomic(t, certFile, cb)
	}
	write(0)
	s := &tlsmode.Store{}
	if err := s.AddFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.Watch(ctx, 5*time.Millisecond)
	}()
	defer func() { cancel(); <-watched }()

	addr := serveL4(t, tlsmode.Offload(tlsmode.Config{Certificates: s}.ServerConfig(), pool(t, testutil.NameServer(t, "n").Addr)))
	// A connection opened before the reloads keeps working after them.
	early, err := tls.Dial("tcp", addr, ca.ClientConfig("rot.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	earlyR := bufio.NewReader(early)
	if line, err := earlyR.ReadString('\n'); err != nil || line != "n\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(10 * time.Second)
			for i := 0; i < 400 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := handshake(addr, ca.ClientConfig("rot.test")); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for gen := 1; gen <= 5; gen++ {
		// Handshakes before, during and after each rotation.
		before := ok.Load()
		testutil.Eventually(t, "10 more handshakes", func() bool { return ok.Load() >= before+10 || failed.Load() > 0 })
		write(gen)
		testutil.Eventually(t, "the new generation", func() bool { return s.Lookup(fmt.Sprintf("gen-%d.test", gen)) != nil })
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d handshakes failed during reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no handshake ran")
	}
	early.SetDeadline(time.Now().Add(5 * time.Second))
	early.Write([]byte("still here\n"))
	if echo, err := earlyR.ReadString('\n'); err != nil || echo != "still here\n" {
		t.Errorf("connection opened before the reloads: %q, %v", echo, err)
	}
	_, st, err := greeting(t, addr, ca.ClientConfig("rot.test"))
	if err != nil || st.PeerCertificates[0].DNSNames[1] != "gen-5.test" {
		t.Fatalf("after reload: %v, names %v", err, st.PeerCertificates[0].DNSNames)
	}
	t.Logf("%d handshakes during 5 reloads", ok.Load())
}

func TestStoreReloadOnDemand(t *testing.T) {
	ca := testutil.NewCA(t)
	certFile, keyFile := testutil.WritePEM(t, ca.Leaf(t, "old.test"))
	s := &tlsmode.Store{}
	if err := s.AddFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	c2, k2 := testutil.WritePEM(t, ca.Leaf(t, "new.test"))
	cb, _ := os.ReadFile(c2)
	kb, _ := os.ReadFile(k2)
	os.WriteFile(certFile, []byte("broken"), 0o600)
	if err := s.Reload(); !errors.Is(err, tlsmode.ErrPEM) || s.Lookup("old.test") == nil {
		t.Fatalf("broken file: err %v; the old certificate must stay", err)
	}
	os.WriteFile(certFile, cb, 0o600)
	os.WriteFile(keyFile, kb, 0o600)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Lookup("new.test") == nil || s.Lookup("old.test") != nil || s.Default().Leaf.Subject.CommonName != "new.test" {
		t.Error("reload did not replace the certificate")
	}
}

func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestProfiles checks the versions each profile accepts, with Go clients
// pinned to one version.
func TestProfiles(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	certs := storeOf(t, ca.Leaf(t, "p.test"))
	n := testutil.NameServer(t, "n")
	versions := []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}
	tests := []struct {
		profile string
		accept  []bool // per version above
	}{
		{"old", []bool{true, true, true, true}},
		{"", []bool{false, false, true, true}}, // intermediate, the default
		{"modern", []bool{false, false, false, true}},
	}
	for _, tt := range tests {
		p, err := tlsmode.ParseProfile(tt.profile)
		if err != nil {
			t.Fatal(err)
		}
		addr := serveL4(t, tlsmode.Offload(tlsmode.Config{Profile: p, Certificates: certs}.ServerConfig(), pool(t, n.Addr)))
		for i, v := range versions {
			cfg := ca.ClientConfig("p.test")
			cfg.MinVersion, cfg.MaxVersion = v, v
			err := handshake(addr, cfg)
			if (err == nil) != tt.accept[i] {
				t.Errorf("%s: %s: err %v, want accepted %v", p, tls.VersionName(v), err, tt.accept[i])
			}
		}
	}
	if _, err := tlsmode.ParseProfile("bogus"); !errors.Is(err, tlsmode.ErrUnknownProfile) {
		t.Errorf("bogus profile: %v", err)
	}
	cfg := &tls.Config{}
	tlsmode.Intermediate.Apply(cfg)
	for _, id := range cfg.CipherSuites {
		for _, in := range tls.InsecureCipherSuites() {
			if in.ID == id {
				t.Errorf("intermediate has insecure suite %s", in.Name)
			}
		}
	}
}
