package tlsmode_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/tlsmode"
)

// TestACMEPebble obtains a certificate from Pebble on the first handshake
// for the name, over TLS-ALPN-01 and over HTTP-01, and serves it.
func TestACMEPebble(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			backend := testutil.NameServer(t, "acme-backend")
			// The listeners open first: Pebble needs their ports.
			httpLn, tlsLn := listen(t), listen(t)
			httpPort, tlsPort := httpLn.Addr().(*net.TCPAddr).Port, tlsLn.Addr().(*net.TCPAddr).Port
			if challenge == "http-01" {
				// Pebble's TLS-ALPN-01 checks go to a closed port, so only
				// HTTP-01 can succeed.
				_, cp, _ := net.SplitHostPort(testutil.ClosedAddr(t))
				tlsPort, _ = strconv.Atoi(cp)
			}
			pb := testutil.StartPebble(t, httpPort, tlsPort)
			roots := pb.Roots
			acme, err := tlsmode.NewACME(tlsmode.ACMEConfig{DirectoryURL: pb.DirectoryURL, Hosts: []string{"acme.test"}, HTTPClient: pb.Client, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var challenges http.Handler = http.NotFoundHandler()
			if challenge == "http-01" {
				challenges = acme.HTTPHandler(nil) // enables HTTP-01
			}
			serveHTTPOn(t, httpLn, nil, challenges)
			certs := &tlsmode.Store{ACME: acme}
			frontAddr := serveL4On(t, tlsLn, tlsmode.Offload(tlsmode.Config{Certificates: certs}.ServerConfig(), pool(t, backend.Addr)))

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			d := tls.Dialer{Config: &tls.Config{ServerName: "acme.test", RootCAs: roots}}
			c, err := d.DialContext(ctx, "tcp", frontAddr)
			if err != nil {
				t.Fatalf("first handshake (issuance): %v", err)
			}
			c.Close()
			// Served from the cache now, verified against Pebble's root.
			got, st, err := greeting(t, frontAddr, &tls.Config{ServerName: "acme.test", RootCAs: roots})
			if err != nil {
				t.Fatal(err)
			}
			leaf := st.PeerCertificates[0]
			if got != "acme-backend" || len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "acme.test" {
				t.Errorf("reached %q with a certificate for %v", got, leaf.DNSNames)
			}
			// Names outside Hosts get no certificate from the CA.
			if _, _, err := greeting(t, frontAddr, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}); err == nil {
				t.Error("handshake for a name outside Hosts succeeded without a certificate")
			}
		})
	}
}

// TestACMERenewal has Pebble issue certificates valid for 30 seconds and
// checks that a renewed certificate is served before the first expires.
func TestACMERenewal(t *testing.T) {
	testutil.CheckLeaks(t)
	backend := testutil.NameServer(t, "acme-backend")
	tlsLn := listen(t)
	pb := testutil.StartPebbleValidity(t, testutil.FreePort(t), tlsLn.Addr().(*net.TCPAddr).Port, 30*time.Second)
	acme, err := tlsmode.NewACME(tlsmode.ACMEConfig{DirectoryURL: pb.DirectoryURL, Hosts: []string{"renew.test"}, HTTPClient: pb.Client, RenewBefore: 25 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	certs := &tlsmode.Store{ACME: acme}
	addr := serveL4On(t, tlsLn, tlsmode.Offload(tlsmode.Config{Certificates: certs}.ServerConfig(), pool(t, backend.Addr)))
	cfg := func() *tls.Config { return &tls.Config{ServerName: "renew.test", RootCAs: pb.Roots} }

	_, st, err := greeting(t, addr, cfg())
	if err != nil {
		t.Fatalf("first handshake (issuance): %v", err)
	}
	first := st.PeerCertificates[0]
	deadline := time.Now().Add(20 * time.Second) // renewal is due 5 to 7.5 s after issuance
	for {
		time.Sleep(250 * time.Millisecond)
		_, st, err := greeting(t, addr, cfg())
		if err != nil {
			t.Fatalf("handshake while renewing: %v", err)
		}
		if leaf := st.PeerCertificates[0]; leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate expires %v, not after the first's %v", leaf.NotAfter, first.NotAfter)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not renewed; still serial %v, expiring %v", first.SerialNumber, first.NotAfter)
		}
	}
}
