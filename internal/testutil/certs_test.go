package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// handshake runs a TLS handshake over a loopback TCP connection and returns
// the server's and the client's errors.
func handshake(t *testing.T, srvConf, cliConf *tls.Config) (serverErr, clientErr error, state tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, srvConf)
		err = tc.Handshake()
		if err == nil {
			state = tc.ConnectionState()
			_, err = tc.Write([]byte("ok"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, cliConf)
	clientErr = tc.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 2))
	}
	if clientErr != nil {
		c.Close()
	}
	serverErr = <-done
	return serverErr, clientErr, state
}

func TestLeafVerifiesForEachName(t *testing.T) {
	CheckLeaks(t)
	ca := NewCA(t)
	cert := ca.Leaf(t, "127.0.0.1", "::1", "localhost", "*.example.com")
	tests := []struct {
		serverName string
		ok         bool
	}{
		{"127.0.0.1", true},
		{"::1", true},
		{"localhost", true},
		{"api.example.com", true},
		{"example.com", false},
		{"a.b.example.com", false},
		{"127.0.0.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.serverName, func(t *testing.T) {
			opts := x509.VerifyOptions{DNSName: tt.serverName, Roots: ca.Pool()}
			_, err := cert.Leaf.Verify(opts)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify(%q) = %v, want ok=%v", tt.serverName, err, tt.ok)
			}
		})
	}
	_, cliErr, _ := handshake(t, &tls.Config{Certificates: []tls.Certificate{cert}}, ca.ClientConfig("127.0.0.1"))
	if cliErr != nil {
		t.Fatalf("handshake with IP SAN: %v", cliErr)
	}
	_, cliErr, _ = handshake(t, ca.ServerConfig(t, "localhost"), ca.ClientConfig("localhost"))
	if cliErr != nil {
		t.Fatalf("handshake with DNS SAN: %v", cliErr)
	}
	if time.Until(cert.Leaf.NotAfter) < 23*time.Hour || time.Since(cert.Leaf.NotBefore) < 59*time.Minute {
		t.Fatalf("validity %v..%v", cert.Leaf.NotBefore, cert.Leaf.NotAfter)
	}
}

func TestLeafRejectedByOtherCA(t *testing.T) {
	ca, other := NewCA(t), NewCA(t)
	_, cliErr, _ := handshake(t, ca.ServerConfig(t), other.ClientConfig("localhost"))
	if cliErr == nil {
		t.Fatal("handshake succeeded with an untrusted CA")
	}
}

func TestClientCertAuth(t *testing.T) {
	ca := NewCA(t)
	srv := ca.ServerConfig(t, "localhost")
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	srv.ClientCAs = ca.Pool()
	cli := ca.ClientConfig("localhost")
	cli.Certificates = []tls.Certificate{ca.ClientCert(t, "alice")}
	srvErr, cliErr, state := handshake(t, srv, cli)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("server: %v, client: %v", srvErr, cliErr)
	}
	if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "alice" {
		t.Fatalf("peer certificates %v", state.PeerCertificates)
	}

	// A server certificate is not accepted for client authentication.
	cli.Certificates = []tls.Certificate{ca.Leaf(t, "alice")}
	if srvErr, _, _ := handshake(t, srv, cli); srvErr == nil {
		t.Fatal("server accepted a certificate without the client auth usage")
	}
}

func TestWritePEM(t *testing.T) {
	ca := NewCA(t)
	cert := ca.Leaf(t, "localhost")
	certFile, keyFile := WritePEM(t, cert)
	loaded, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Leaf.Equal(cert.Leaf) {
		t.Fatal("loaded certificate differs")
	}
	_, cliErr, _ := handshake(t, &tls.Config{Certificates: []tls.Certificate{loaded}}, ca.ClientConfig("localhost"))
	if cliErr != nil {
		t.Fatal(cliErr)
	}

	caPEM, err := os.ReadFile(ca.WriteCAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CA file: %q", caPEM)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("CertPEM not parsable")
	}
	if !ca.Cert.IsCA || ca.Cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatal("CA is not a self-signed CA")
	}
}
