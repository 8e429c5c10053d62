package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbkit/lbkit/tlsmode"
)

// CA is a certificate authority generated at run time, for demo
// certificates on loopback. It is safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA generates a CA valid for a week.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "lbkit demo CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// Issue returns a server certificate (ECDSA P-256, the cheapest to
// handshake) for names: IP addresses become IP SANs, others DNS SANs; the
// first name is the common name.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// WriteCAFile writes the CA certificate as PEM into dir, in a file named
// after the process, and returns the file name, for curl --cacert and
// openssl -CAfile.
func (ca *CA) WriteCAFile(dir string) (string, error) {
	f := filepath.Join(dir, fmt.Sprintf("lbkit-demo-ca-%d.pem", os.Getpid()))
	return f, os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644)
}

// TLSBackends starts one TLS server on 127.0.0.1 per name, presenting a
// certificate of ca for that name (and 127.0.0.1), that greets each
// connection with its name and echoes lines, like TCPBackends. They stop
// when ctx is done. It returns their addresses, comma-separated.
func TLSBackends(ctx context.Context, ca *CA, names ...string) (string, error) {
	var addrs []string
	for _, name := range names {
		cert, err := ca.Issue(name, "127.0.0.1")
		if err != nil {
			return "", err
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			return "", err
		}
		go acceptLoop(ln, name)
		context.AfterFunc(ctx, func() { ln.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return strings.Join(addrs, ","), nil
}

// HTTPSBackends starts n HTTPS servers on 127.0.0.1 with certificates of
// ca for 127.0.0.1, speaking HTTP/2 and HTTP/1.1, that answer with their
// name and the protocol of the request. They stop when ctx is done.
func HTTPSBackends(ctx context.Context, ca *CA, n int) (string, error) {
	var addrs []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("tls-backend-%d", i)
		cert, err := ca.Issue("127.0.0.1", "localhost")
		if err != nil {
			return "", err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", name)
				fmt.Fprintf(w, "hello from %s over %s with TLS (you are %s, %s)\n", name, r.Proto, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
			}),
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
			ReadHeaderTimeout: 5 * time.Second,
		}
		go srv.ServeTLS(ln, "", "")
		context.AfterFunc(ctx, func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	return strings.Join(addrs, ","), nil
}

// FrontendStore returns the certificate store of an example's TLS frontend:
// the PEM files when certFile is set, reloaded on change every reload until
// ctx is done, or else a certificate for localhost issued by ca (a new CA
// when nil), whose pool it returns so that clients can verify it, and
// whose CA file it writes for curl and says where.
func FrontendStore(ctx context.Context, certFile, keyFile string, reload time.Duration, ca *CA) (*tlsmode.Store, *x509.CertPool, error) {
	certs := &tlsmode.Store{}
	if certFile != "" {
		if err := certs.AddFiles(certFile, keyFile); err != nil {
			return nil, nil, err
		}
		go certs.Watch(ctx, reload)
		return certs, nil, nil
	}
	if ca == nil {
		var err error
		if ca, err = NewCA(); err != nil {
			return nil, nil, err
		}
	}
	cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, nil, err
	}
	if err := certs.Add(cert); err != nil {
		return nil, nil, err
	}
	caFile, err := ca.WriteCAFile(os.TempDir())
	if err != nil {
		return nil, nil, err
	}
	fmt.Printf("generated a certificate for localhost (CA in %s)\n", caFile)
	return certs, ca.Pool(), nil
}
