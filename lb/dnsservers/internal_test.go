package dnsservers

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestParseResolvConf(t *testing.T) {
	got := parseResolvConf(strings.NewReader(`# comment
search example.com
nameserver 192.0.2.1
nameserver   2001:db8::53
nameserver fe80::1%eth0
nameserver not-an-address
nameserver
options ndots:2
`))
	want := []string{"192.0.2.1:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("nameservers %v, want %v", got, want)
	}
}

func TestSystemServers(t *testing.T) {
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	dir := t.TempDir()
	resolvConf = filepath.Join(dir, "missing")
	if got, err := systemServers(); err != nil || !slices.Equal(got, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Fatalf("without resolv.conf: %v, %v; want the local server", got, err)
	}
	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 192.0.2.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := systemServers(); err != nil || !slices.Equal(got, []string{"192.0.2.7:53"}) {
		t.Fatalf("systemServers: %v, %v; want 192.0.2.7:53", got, err)
	}
}

// A server that fails (no answer: the port is closed) is skipped for the
// next one; NXDOMAIN is an answer and ends the search.
func TestResolverTriesServersInOrder(t *testing.T) {
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.LocalAddr().String()
	closed.Close()
	good := answerUDP(t, func(q dnsmessage.Question) (dnsmessage.RCode, []dnsmessage.Resource) {
		if q.Name.String() == "gone.test." {
			return dnsmessage.RCodeNameError, nil
		}
		return dnsmessage.RCodeSuccess, []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 9},
			Body:   &dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}},
		}}
	})
	r := &resolver{servers: []string{dead, good}, timeout: time.Second, types: []dnsmessage.Type{dnsmessage.TypeA}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	addrs, ttl, err := r.addrs(ctx, dnsmessage.MustNewName("web.test."), nil)
	if err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("10.0.0.1")}) || ttl != 9*time.Second {
		t.Fatalf("addrs %v, TTL %v, error %v; want 10.0.0.1 from the second server, TTL 9s", addrs, ttl, err)
	}
	r.servers = []string{good, dead}
	if _, _, err := r.addrs(ctx, dnsmessage.MustNewName("gone.test."), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
}

// answerUDP serves DNS over UDP on 127.0.0.1 with answer's records.
func answerUDP(t *testing.T, answer func(q dnsmessage.Question) (dnsmessage.RCode, []dnsmessage.Resource)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			m.Header.Response = true
			m.Header.RCode, m.Answers = answer(m.Questions[0])
			m.Additionals = nil
			out, err := m.Pack()
			if err != nil {
				t.Error(err)
				return
			}
			pc.WriteTo(out, from)
		}
	}()
	return pc.LocalAddr().String()
}

// FuzzAnswer feeds arbitrary responses to the checks and the parsing of
// answers: they never panic, and what parseAnswer returns is consistent.
func FuzzAnswer(f *testing.F) {
	name := dnsmessage.MustNewName("web.test.")
	seed := func(t dnsmessage.Type, rcode dnsmessage.RCode, rrs, extra []dnsmessage.Resource) {
		m := dnsmessage.Message{
			Header:      dnsmessage.Header{ID: 7, Response: true, RCode: rcode},
			Questions:   []dnsmessage.Question{{Name: name, Type: t, Class: dnsmessage.ClassINET}},
			Answers:     rrs,
			Additionals: extra,
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(t))
	}
	hdr := func(n string, t dnsmessage.Type) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(n), Type: t, Class: dnsmessage.ClassINET, TTL: 30}
	}
	seed(dnsmessage.TypeA, dnsmessage.RCodeSuccess, []dnsmessage.Resource{
		{Header: hdr("web.test.", dnsmessage.TypeCNAME), Body: &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("x.test.")}},
		{Header: hdr("x.test.", dnsmessage.TypeCNAME), Body: &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("web.test.")}},
		{Header: hdr("x.test.", dnsmessage.TypeA), Body: &dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}}},
	}, nil)
	seed(dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, []dnsmessage.Resource{
		{Header: hdr("web.test.", dnsmessage.TypeAAAA), Body: &dnsmessage.AAAAResource{AAAA: [16]byte{15: 1}}},
	}, nil)
	seed(dnsmessage.TypeSRV, dnsmessage.RCodeSuccess, []dnsmessage.Resource{
		{Header: hdr("web.test.", dnsmessage.TypeSRV), Body: &dnsmessage.SRVResource{Target: dnsmessage.MustNewName("a.test."), Port: 80, Priority: 1, Weight: 2}},
	}, []dnsmessage.Resource{
		{Header: hdr("a.test.", dnsmessage.TypeA), Body: &dnsmessage.AResource{A: [4]byte{10, 0, 0, 2}}},
	})
	seed(dnsmessage.TypeA, dnsmessage.RCodeServerFailure, nil, nil)
	seed(dnsmessage.TypeA, dnsmessage.RCodeNameError, nil, nil)
	f.Fuzz(func(t *testing.T, resp []byte, qtype uint16) {
		typ := dnsmessage.Type(qtype)
		if checkReply(resp, 7, name, typ) != nil {
			return
		}
		a, err := parseAnswer(resp, name, typ)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrServerFailure) && !errors.Is(err, ErrBadAnswer) {
				t.Fatalf("error %v is none of the package's", err)
			}
			return
		}
		for _, ip := range a.addrs {
			if !ip.IsValid() || (typ == dnsmessage.TypeA) != ip.Is4() {
				t.Fatalf("address %v in an answer of type %v", ip, typ)
			}
		}
		if len(a.srvs) > 0 && typ != dnsmessage.TypeSRV {
			t.Fatalf("SRV records in an answer of type %v", typ)
		}
		if (len(a.addrs) > 0 || len(a.srvs) > 0) && a.minTTL < 0 {
			t.Fatalf("records without a TTL")
		}
	})
}

func TestBackoff(t *testing.T) {
	s := &Source{Interval: 10 * time.Second, MinInterval: time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, s.backoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
	// A long MinInterval and many failures never overflow.
	s = &Source{Interval: math.MaxInt64, MinInterval: time.Hour}
	if d := s.backoff(1000); d != math.MaxInt64 {
		t.Fatalf("backoff after 1000 failures = %v, want the interval", d)
	}
}
