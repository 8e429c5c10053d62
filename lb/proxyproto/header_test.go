package proxyproto_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	pp "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// serverTLSState runs a real TLS handshake over loopback and returns the
// server side's connection state, as a terminating frontend sees it. With
// cn set the client presents a certificate with that common name, which the
// server verifies when verify is true.
func serverTLSState(t *testing.T, cn string, verify bool) tls.ConnectionState {
	t.Helper()
	ca := testutil.NewCA(t)
	srvConf := ca.ServerConfig(t, "lb.example")
	srvConf.NextProtos = []string{"h2", "http/1.1"}
	srvConf.ClientAuth = tls.RequestClientCert
	if verify {
		srvConf.ClientAuth = tls.VerifyClientCertIfGiven
		srvConf.ClientCAs = ca.Pool()
	}
	cliConf := ca.ClientConfig("lb.example")
	cliConf.NextProtos = []string{"h2"}
	if cn != "" {
		cliConf.Certificates = []tls.Certificate{ca.ClientCert(t, cn)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), cliConf)
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // until the server closes
			c.Close()
			err = nil
		}
		done <- err
	}()
	raw, err := ln.Accept()
	must(t, err)
	sc := tls.Server(raw, srvConf)
	sc.SetDeadline(time.Now().Add(5 * time.Second))
	must(t, sc.Handshake())
	st := sc.ConnectionState()
	sc.Close()
	must(t, <-done)
	return st
}

// readHeader decodes a header with go-proxyproto's reader.
func readHeader(t *testing.T, b []byte) *pp.Header {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	h, err := pp.Read(br)
	if err != nil {
		t.Fatalf("go-proxyproto cannot read %x: %v", b, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the header", br.Buffered())
	}
	return h
}

func TestV2TLVsReadByGoProxyproto(t *testing.T) {
	verified := serverTLSState(t, "alice", true)
	unverified := serverTLSState(t, "mallory", false)
	noCert := serverTLSState(t, "", true)
	tests := []struct {
		name     string
		state    *tls.ConnectionState
		opts     proxyproto.V2Options
		ssl      bool
		client   uint8 // SSL TLV client bits
		verified bool
		cn       string
	}{
		{"ssl-cn verified", &verified, proxyproto.V2Options{CN: true, Authority: true, ALPN: true}, true,
			tlvparse.PP2_BITFIELD_CLIENT_SSL | tlvparse.PP2_BITFIELD_CLIENT_CERT_CONN | tlvparse.PP2_BITFIELD_CLIENT_CERT_SESS, true, "alice"},
		{"ssl unverified, no CN asked", &unverified, proxyproto.V2Options{SSL: true, Authority: true, ALPN: true}, true,
			tlvparse.PP2_BITFIELD_CLIENT_SSL | tlvparse.PP2_BITFIELD_CLIENT_CERT_CONN | tlvparse.PP2_BITFIELD_CLIENT_CERT_SESS, false, ""},
		{"ssl-cn without client certificate", &noCert, proxyproto.V2Options{CN: true, Authority: true, ALPN: true}, true,
			tlvparse.PP2_BITFIELD_CLIENT_SSL, false, ""},
		{"ssl without TLS", nil, proxyproto.V2Options{SSL: true, Authority: true, ALPN: true}, true, 0, false, ""},
		{"no SSL TLV", &verified, proxyproto.V2Options{Authority: true, ALPN: true}, false, 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := &lb.ConnInfo{
				Remote: netip.MustParseAddrPort("[2001:db8::7]:50123"),
				Local:  netip.MustParseAddrPort("[2001:db8::1]:443"),
				TLS:    tt.state,
			}
			if tt.state == nil {
				info.SNI = "peeked.example" // passthrough: SNI from the ClientHello
			}
			opts := tt.opts
			opts.TLVs = func(ci *lb.ConnInfo, s *lb.Server) []proxyproto.TLV {
				return []proxyproto.TLV{{Type: 0xE3, Value: []byte(s.Name)}}
			}
			var buf bytes.Buffer
			must(t, proxyproto.V2(opts)(&buf, info, &lb.Server{Name: "web1", Addr: "127.0.0.1:1"}))
			h := readHeader(t, buf.Bytes())
			src, dst, ok := h.TCPAddrs()
			if !ok || h.Command != pp.PROXY || h.TransportProtocol != pp.TCPv6 ||
				src.AddrPort() != info.Remote || dst.AddrPort() != info.Local {
				t.Fatalf("header %+v", h)
			}
			tlvs, err := h.TLVs()
			must(t, err)
			byType := map[pp.PP2Type][]byte{}
			for _, tlv := range tlvs {
				byType[tlv.Type] = tlv.Value
			}
			wantSNI := "lb.example"
			if tt.state == nil {
				wantSNI = "peeked.example"
			}
			if got := string(byType[pp.PP2_TYPE_AUTHORITY]); got != wantSNI {
				t.Errorf("AUTHORITY = %q, want %q", got, wantSNI)
			}
			wantALPN := ""
			if tt.state != nil {
				wantALPN = "h2"
			}
			if got := string(byType[pp.PP2_TYPE_ALPN]); got != wantALPN {
				t.Errorf("ALPN = %q, want %q", got, wantALPN)
			}
			if got := string(byType[0xE3]); got != "web1" {
				t.Errorf("application TLV = %q", got)
			}
			ssl, found := tlvparse.FindSSL(tlvs)
			if found != tt.ssl {
				t.Fatalf("SSL TLV present = %v, want %v", found, tt.ssl)
			}
			if !found {
				return
			}
			if ssl.Client != tt.client || ssl.Verified() != tt.verified {
				t.Errorf("client = %#x verified = %v, want %#x %v", ssl.Client, ssl.Verified(), tt.client, tt.verified)
			}
			version, _ := ssl.SSLVersion()
			cipher, _ := ssl.SSLCipher()
			cn, _ := ssl.ClientCN()
			if tt.state != nil {
				if version != "TLSv1.3" || cipher != tls.CipherSuiteName(tt.state.CipherSuite) {
					t.Errorf("version %q cipher %q", version, cipher)
				}
			} else if version != "" || cipher != "" {
				t.Errorf("version %q cipher %q without TLS", version, cipher)
			}
			if cn != tt.cn {
				t.Errorf("CN = %q, want %q", cn, tt.cn)
			}
		})
	}
}

func TestHeaderFuncs(t *testing.T) {
	v4 := &lb.ConnInfo{Remote: netip.MustParseAddrPort("192.0.2.7:50123"), Local: netip.MustParseAddrPort("198.51.100.1:80")}
	v6 := &lb.ConnInfo{Remote: netip.MustParseAddrPort("[2001:db8::7]:50123"), Local: netip.MustParseAddrPort("[2001:db8::1]:80")}
	mapped := &lb.ConnInfo{Remote: netip.MustParseAddrPort("[::ffff:192.0.2.7]:50123"), Local: netip.MustParseAddrPort("198.51.100.1:80")}
	unix := &lb.ConnInfo{} // a client on a Unix socket has no IP address
	tests := []struct {
		name    string
		hf      lb.HeaderFunc
		info    *lb.ConnInfo
		wantRaw string // v1 only
		local   bool
		proto   pp.AddressFamilyAndProtocol
	}{
		{"v1 ipv4", proxyproto.V1(), v4, "PROXY TCP4 192.0.2.7 198.51.100.1 50123 80\r\n", false, pp.TCPv4},
		{"v1 ipv6", proxyproto.V1(), v6, "PROXY TCP6 2001:db8::7 2001:db8::1 50123 80\r\n", false, pp.TCPv6},
		{"v1 mapped", proxyproto.V1(), mapped, "PROXY TCP4 192.0.2.7 198.51.100.1 50123 80\r\n", false, pp.TCPv4},
		{"v1 not IP", proxyproto.V1(), unix, "PROXY UNKNOWN\r\n", true, pp.UNSPEC},
		{"v1 own connection", proxyproto.V1(), nil, "PROXY UNKNOWN\r\n", true, pp.UNSPEC},
		{"v2 ipv4", proxyproto.V2(proxyproto.V2Options{}), v4, "", false, pp.TCPv4},
		{"v2 ipv6", proxyproto.V2(proxyproto.V2Options{}), v6, "", false, pp.TCPv6},
		{"v2 not IP", proxyproto.V2(proxyproto.V2Options{SSL: true}), unix, "", true, pp.UNSPEC},
		{"v2 own connection", proxyproto.V2(proxyproto.V2Options{CN: true}), nil, "", true, pp.UNSPEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			must(t, tt.hf(&buf, tt.info, &lb.Server{Name: "s", Addr: "127.0.0.1:1"}))
			if tt.wantRaw != "" && buf.String() != tt.wantRaw {
				t.Fatalf("got %q, want %q", buf.String(), tt.wantRaw)
			}
			h := readHeader(t, buf.Bytes())
			if h.TransportProtocol != tt.proto {
				t.Fatalf("family %#x, want %#x", h.TransportProtocol, tt.proto)
			}
			if tt.local {
				if h.Version == 2 && h.Command != pp.LOCAL {
					t.Fatalf("command %#x, want LOCAL", h.Command)
				}
				return
			}
			src, dst, ok := h.TCPAddrs()
			want := tt.info.Remote
			if !ok || netip.AddrPortFrom(src.AddrPort().Addr().Unmap(), src.AddrPort().Port()) != netip.AddrPortFrom(want.Addr().Unmap(), want.Port()) ||
				dst.AddrPort().Port() != tt.info.Local.Port() {
				t.Fatalf("addresses %v %v, want %v", src, dst, tt.info.Remote)
			}
		})
	}
}

// headerServer accepts connections on 127.0.0.1, reads a PROXY header from
// each with go-proxyproto's reader and sends the headers on the channel.
func headerServer(t *testing.T) (string, <-chan *pp.Header) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ch := make(chan *pp.Header, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			h, err := pp.Read(bufio.NewReader(c))
			c.Close()
			if err == nil {
				ch <- h
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), ch
}

// TestPoolDialContextSendsLocal: a connection lbkit opens on its own
// behalf (client-side balancing, as health checks do) carries LOCAL.
func TestPoolDialContextSendsLocal(t *testing.T) {
	testutil.CheckLeaks(t)
	addr, headers := headerServer(t)
	for _, hf := range []lb.HeaderFunc{proxyproto.V1(), proxyproto.V2(proxyproto.V2Options{SSL: true})} {
		pool := &lb.Pool{Name: "p", ProxyHeader: hf}
		must(t, pool.Update([]lb.Server{{Addr: addr}}))
		c, err := pool.DialContext(context.Background(), "tcp", "ignored:1")
		must(t, err)
		c.Close()
		select {
		case h := <-headers:
			if !h.Command.IsLocal() && h.TransportProtocol != pp.UNSPEC {
				t.Fatalf("header %+v is not LOCAL/UNKNOWN", h)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no header")
		}
	}
}
