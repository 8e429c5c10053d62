package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a self-signed ECDSA P-256 certificate authority generated at run
// time. Certificates it issues are valid from one hour ago to 24 hours from
// now. A CA is safe for concurrent use.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key is the CA private key.
	Key *ecdsa.PrivateKey

	certPEM []byte
}

// NewCA generates a self-signed certificate authority.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key := newKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "lbkit test CA", Organization: []string{"lbkit tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testutil: creating CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testutil: parsing CA certificate: %v", err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

// Leaf issues a server certificate for names. Each name that parses as an
// IP address ("127.0.0.1", "::1") becomes an IP SAN, every other one
// ("localhost", "*.example.com") a DNS SAN; the first name is also the
// subject's common name. Without names the certificate is valid for
// "localhost", "127.0.0.1" and "::1".
func (ca *CA) Leaf(tb testing.TB, names ...string) tls.Certificate {
	tb.Helper()
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1", "::1"}
	}
	tmpl := ca.template(tb, names[0])
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return ca.issue(tb, tmpl)
}

// ClientCert issues a certificate for TLS client authentication with the
// given subject common name.
func (ca *CA) ClientCert(tb testing.TB, commonName string) tls.Certificate {
	tb.Helper()
	tmpl := ca.template(tb, commonName)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(tb, tmpl)
}

// Pool returns a new certificate pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertPEM returns the CA certificate in PEM form.
func (ca *CA) CertPEM() []byte {
	return append([]byte(nil), ca.certPEM...)
}

// WriteCAFile writes the CA certificate in PEM form to a file in
// tb.TempDir() and returns its path.
func (ca *CA) WriteCAFile(tb testing.TB) string {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(f, ca.certPEM, 0o600); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return f
}

// ServerConfig returns a TLS server configuration presenting a leaf
// certificate for names (see Leaf).
func (ca *CA) ServerConfig(tb testing.TB, names ...string) *tls.Config {
	tb.Helper()
	return &tls.Config{Certificates: []tls.Certificate{ca.Leaf(tb, names...)}}
}

// ClientConfig returns a TLS client configuration trusting only the CA and
// expecting serverName.
func (ca *CA) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), ServerName: serverName}
}

func (ca *CA) template(tb testing.TB, commonName string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"lbkit tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func (ca *CA) issue(tb testing.TB, tmpl *x509.Certificate) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		tb.Fatalf("testutil: issuing certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testutil: parsing certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// WritePEM writes the certificate chain and the private key of cert as PEM
// files (CERTIFICATE blocks, and a PKCS #8 PRIVATE KEY block) in
// tb.TempDir() and returns their paths.
func WritePEM(tb testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	tb.Helper()
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		tb.Fatalf("testutil: encoding private key: %v", err)
	}
	dir := tb.TempDir()
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return certFile, keyFile
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testutil: generating key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatalf("testutil: serial number: %v", err)
	}
	return n
}
