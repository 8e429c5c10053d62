package tlsmode_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// selfSigned returns a throwaway certificate for names.
func selfSigned(names ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A Store chooses the certificate by SNI: exact names, one-label
// wildcards, and the first certificate as the default.
func ExampleStore() {
	certs := &tlsmode.Store{}
	certs.Add(selfSigned("default.example"))
	certs.Add(selfSigned("*.example.com"))
	certs.Add(selfSigned("www.example.com"))

	for _, sni := range []string{"www.example.com", "shop.example.com", "a.b.example.com", ""} {
		c, _ := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		fmt.Printf("%q -> %s\n", sni, c.Leaf.Subject.CommonName)
	}
	// Output:
	// "www.example.com" -> www.example.com
	// "shop.example.com" -> *.example.com
	// "a.b.example.com" -> default.example
	// "" -> default.example
}

// ParseClientHello reads what a client asks for from the bytes it sent.
func ExampleParseClientHello() {
	client, server := net.Pipe()
	go tls.Client(client, &tls.Config{ServerName: "db.example.com", NextProtos: []string{"h2", "http/1.1"}}).Handshake()
	buf := make([]byte, 16<<10)
	n, _ := server.Read(buf)
	server.Close()

	hello, err := tlsmode.ParseClientHello(buf[:n])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(hello.ServerName, hello.SupportedProtos)
	// Output: db.example.com [h2 http/1.1]
}

// Passthrough in front of an lb.Mux routes TLS connections by SNI without
// decrypting them.
func ExamplePassthrough() {
	db := &lb.Pool{Name: "db"}
	db.Update([]lb.Server{{Addr: "10.0.0.5:5432"}})
	web := &lb.Pool{Name: "web"}
	web.Update([]lb.Server{{Addr: "10.0.0.7:443"}})

	mux := &lb.Mux{Default: web}
	mux.Handle("db.example.com", db)
	frontend := &lb.TCPFrontend{Name: "tls", Backend: tlsmode.Passthrough(mux)}
	_ = frontend // frontend.Serve(listener)
	fmt.Println(mux.Match("db.example.com") == db, mux.Match("other.example.com") == web)
	// Output: true true
}

// Profiles set versions and cipher suites after Mozilla's guidelines.
func ExampleProfile() {
	for _, p := range []tlsmode.Profile{tlsmode.Old, tlsmode.Intermediate, tlsmode.Modern} {
		cfg := tlsmode.Config{Profile: p, Certificates: &tlsmode.Store{}}.ServerConfig()
		fmt.Println(p, tls.VersionName(cfg.MinVersion), len(cfg.CipherSuites))
	}
	// Output:
	// old TLS 1.0 18
	// intermediate TLS 1.2 6
	// modern TLS 1.3 0
}
