package tlsmode_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/tlsmode"
)

// serveHello serves TLS with cfg on loopback: each connection gets one
// byte after its handshake, then closes. It returns the address.
func serveHello(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln := listen(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					tc.Write([]byte{'!'})
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// resumed dials addr with cfg and tells whether the session resumed.
func resumed(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Reading takes in the TLS 1.3 tickets sent after the handshake.
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

func TestTicketKeysShareAndRotate(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	leaf := ca.Leaf(t, "localhost")
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	keys := &tlsmode.TicketKeys{Now: clock}
	cert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &leaf, nil }

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			front := tlsmode.Config{GetCertificate: cert, TicketKeys: keys}
			a := serveHello(t, front.ServerConfig())
			// B's config is cloned, as http.Server does with its TLSConfig.
			b := serveHello(t, front.ServerConfig().Clone())
			// C has keys of its own.
			c := serveHello(t, tlsmode.Config{GetCertificate: cert, TicketKeys: &tlsmode.TicketKeys{Now: clock}}.ServerConfig())
			client := func() *tls.Config {
				cfg := ca.ClientConfig("localhost")
				cfg.MinVersion, cfg.MaxVersion = version, version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				return cfg
			}

			cfg := client()
			if resumed(t, a, cfg) {
				t.Fatal("first handshake resumed")
			}
			if !resumed(t, b, cfg) {
				t.Fatal("session from A did not resume on B")
			}
			cfg = client()
			resumed(t, a, cfg)
			if resumed(t, c, cfg) {
				t.Fatal("session from A resumed on C, which has other keys")
			}

			// After a rotation the previous key still decrypts.
			cfg = client()
			resumed(t, a, cfg)
			advance(tlsmode.DefaultTicketRotation)
			keys.Rotate()
			if !resumed(t, b, cfg) {
				t.Fatal("session from before one rotation did not resume")
			}

			// A key past its lifetime is dropped.
			cfg = client()
			resumed(t, a, cfg)
			for range 7 {
				advance(tlsmode.DefaultTicketRotation)
				keys.Rotate()
			}
			if keys.Len() != 7 {
				t.Errorf("%d keys kept, want 7 (one a day for a week)", keys.Len())
			}
			if resumed(t, b, cfg) {
				t.Fatal("session resumed with a key older than its lifetime")
			}
		})
	}
}

func TestTicketKeysLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := &tlsmode.TicketKeys{Rotation: time.Hour, Lifetime: 3 * time.Hour, Now: func() time.Time { return now }}
	for i, want := range []int{1, 2, 3, 3, 3} {
		keys.Rotate()
		if got := keys.Len(); got != want {
			t.Errorf("rotation %d: %d keys, want %d", i, got, want)
		}
		now = now.Add(time.Hour)
	}
	// Register makes a new key when the newest is Rotation old.
	keys.Register(&tls.Config{})
	if got := keys.Len(); got != 3 {
		t.Errorf("after a stale Register: %d keys, want 3", got)
	}
	// Lifetime below Rotation keeps only the current key.
	short := &tlsmode.TicketKeys{Rotation: time.Hour, Lifetime: time.Minute, Now: func() time.Time { return now }}
	short.Rotate()
	now = now.Add(time.Hour)
	short.Rotate()
	if got := short.Len(); got != 1 {
		t.Errorf("lifetime below rotation: %d keys, want 1", got)
	}
}

func TestTicketKeysLifetimeNotMultiple(t *testing.T) {
	// Rotations at 0, 5 h and 10 h: the first key would be 15 h old at the
	// next one, past its 12 h, so the 10 h rotation drops it.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := &tlsmode.TicketKeys{Rotation: 5 * time.Hour, Lifetime: 12 * time.Hour, Now: func() time.Time { return now }}
	for i, want := range []int{1, 2, 2} {
		keys.Rotate()
		if got := keys.Len(); got != want {
			t.Errorf("rotation %d: %d keys, want %d", i, got, want)
		}
		now = now.Add(5 * time.Hour)
	}
}

// TestTicketKeysSecretAcrossInstances runs two load balancers with their
// own TicketKeys derived from one secret: a session begun on one resumes
// on the other, across a rotation, and across a boundary their clocks see
// at different times; another secret does not resume it.
func TestTicketKeysSecretAcrossInstances(t *testing.T) {
	testutil.CheckLeaks(t)
	ca := testutil.NewCA(t)
	leaf := ca.Leaf(t, "localhost")
	cert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &leaf, nil }
	secret := []byte("0123456789abcdef0123456789abcdef")
	type clock struct {
		mu  sync.Mutex
		now time.Time
	}
	newClock := func(t0 time.Time) *clock { return &clock{now: t0} }
	get := func(c *clock) func() time.Time {
		return func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
	}
	set := func(c *clock, t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ca1, cb1, cc1 := newClock(t0), newClock(t0), newClock(t0)
	ka := &tlsmode.TicketKeys{Secret: secret, Rotation: time.Hour, Lifetime: 3 * time.Hour, Now: get(ca1)}
	kb := &tlsmode.TicketKeys{Secret: secret, Rotation: time.Hour, Lifetime: 3 * time.Hour, Now: get(cb1)}
	kc := &tlsmode.TicketKeys{Secret: []byte("another secret, as long as it is"), Rotation: time.Hour, Lifetime: 3 * time.Hour, Now: get(cc1)}
	for _, k := range []*tlsmode.TicketKeys{ka, kb, kc} {
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&tlsmode.TicketKeys{Secret: []byte("short")}).Validate(); err == nil {
		t.Error("a 5-byte secret is valid")
	}

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			for _, c := range []*clock{ca1, cb1, cc1} {
				set(c, t0)
			}
			ka.Rotate()
			kb.Rotate()
			kc.Rotate()
			a := serveHello(t, tlsmode.Config{GetCertificate: cert, TicketKeys: ka}.ServerConfig())
			b := serveHello(t, tlsmode.Config{GetCertificate: cert, TicketKeys: kb}.ServerConfig())
			c := serveHello(t, tlsmode.Config{GetCertificate: cert, TicketKeys: kc}.ServerConfig())
			client := func() *tls.Config {
				cfg := ca.ClientConfig("localhost")
				cfg.MinVersion, cfg.MaxVersion = version, version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				return cfg
			}

			cfg := client()
			if resumed(t, a, cfg) {
				t.Fatal("first handshake resumed")
			}
			if !resumed(t, b, cfg) {
				t.Fatal("session from A did not resume on B, which shares the secret")
			}
			cfg = client()
			resumed(t, a, cfg)
			if resumed(t, c, cfg) {
				t.Fatal("session from A resumed on C, which has another secret")
			}

			// A rotation on both, at the same boundary: the previous key
			// still decrypts.
			cfg = client()
			resumed(t, a, cfg)
			set(ca1, t0.Add(time.Hour))
			set(cb1, t0.Add(time.Hour))
			ka.Rotate()
			kb.Rotate()
			if !resumed(t, b, cfg) {
				t.Fatal("session from before the rotation did not resume on B")
			}

			// A's clock passed the next boundary, B's not yet: B accepts
			// the next period's key.
			set(ca1, t0.Add(2*time.Hour))
			ka.Rotate()
			cfg = client()
			resumed(t, a, cfg)
			if !resumed(t, b, cfg) {
				t.Fatal("session sealed with the next period's key did not resume on B")
			}

			// Past Lifetime the key is gone everywhere.
			cfg = client()
			resumed(t, a, cfg)
			set(cb1, t0.Add(5*time.Hour))
			kb.Rotate()
			if resumed(t, b, cfg) {
				t.Fatal("session resumed with a key older than its lifetime")
			}
		})
	}
}

// TestTicketKeysShortSecretRefused checks that a Secret under
// MinTicketSecret is refused by Register, which disables tickets on the
// config instead of falling back to keys of this process alone, and that
// Rotate and Run make no key with it; Config.Validate reports it too.
func TestTicketKeysShortSecretRefused(t *testing.T) {
	keys := &tlsmode.TicketKeys{Secret: []byte("fifteen bytes!!")}
	cfg := &tls.Config{}
	if err := keys.Register(cfg); !errors.Is(err, tlsmode.ErrTicketSecret) {
		t.Fatalf("Register: %v, want ErrTicketSecret", err)
	}
	if !cfg.SessionTicketsDisabled || cfg.WrapSession != nil || cfg.UnwrapSession != nil {
		t.Errorf("refused config: tickets disabled %v, hooks set %v", cfg.SessionTicketsDisabled, cfg.WrapSession != nil || cfg.UnwrapSession != nil)
	}
	keys.Rotate()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys.Run(ctx) // returns at once with a refused secret
	if n := keys.Len(); n != 0 {
		t.Errorf("%d keys made from a refused secret", n)
	}
	if err := (tlsmode.Config{TicketKeys: keys}).Validate(); !errors.Is(err, tlsmode.ErrTicketSecret) {
		t.Errorf("Config.Validate: %v, want ErrTicketSecret", err)
	}
	if sc := (tlsmode.Config{TicketKeys: keys}).ServerConfig(); !sc.SessionTicketsDisabled {
		t.Error("ServerConfig with a refused secret issues tickets")
	}
	good := &tlsmode.TicketKeys{Secret: []byte("sixteen bytes!!!")}
	if err := good.Register(&tls.Config{}); err != nil || good.Len() == 0 {
		t.Errorf("a 16-byte secret: %v, %d keys", err, good.Len())
	}
}
