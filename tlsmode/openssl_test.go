package tlsmode_test

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// TestOffloadOpenSSL terminates openssl s_client's TLS: the certificate
// chosen by SNI, ALPN, the profile's versions and the client certificate's
// name as lbkit sees it.
func TestOffloadOpenSSL(t *testing.T) {
	testutil.CheckLeaks(t)
	openssl := testutil.LookBinary(t, "openssl", "openssl")
	ca := testutil.NewCA(t)
	caFile := ca.WriteCAFile(t)
	clientCert, clientKey := testutil.WritePEM(t, ca.ClientCert(t, "client-7"))
	certs := storeOf(t, ca.Leaf(t, "default.test"), ca.Leaf(t, "*.apps.test"))
	cfg := tlsmode.Config{Certificates: certs, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(), NextProtos: []string{"h2", "x-lbkit"}}
	addr := serveL4(t, tlsmode.Offload(cfg.ServerConfig(), lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		defer c.Close()
		io.WriteString(c, "cn="+tlsmode.ClientCN(&c.Info)+" alpn="+strings.Join(c.Info.ALPN, ",")+"\n")
	})))
	modern := serveL4(t, tlsmode.Offload(tlsmode.Config{Profile: tlsmode.Modern, Certificates: certs}.ServerConfig(), lb.BackendFunc(func(ctx context.Context, c *lb.Conn) {
		c.Close()
	})))
	tests := []struct {
		name, addr, sni string
		args            []string
		want            []string
	}{
		{"wildcard certificate", addr, "shop.apps.test", nil, []string{"CN = *.apps.test", "Verification: OK", "cn= alpn="}},
		{"default certificate", addr, "other.test", nil, []string{"CN = default.test", "cn= alpn="}},
		{"alpn", addr, "shop.apps.test", []string{"-alpn", "x-lbkit"}, []string{"cn= alpn=x-lbkit"}},
		{"client certificate", addr, "shop.apps.test", []string{"-cert", clientCert, "-key", clientKey}, []string{"cn=client-7 alpn="}},
		{"modern refuses TLS 1.2", modern, "shop.apps.test", []string{"-tls1_2"}, []string{"alert protocol version"}},
		{"modern speaks TLS 1.3", modern, "shop.apps.test", []string{"-tls1_3"}, []string{"Protocol version: TLSv1.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The servers close after their line: wait for it.
			out := sClient(t, openssl, tt.addr, tt.sni, caFile, append(tt.args, "-ign_eof")...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
		})
	}
}
