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
