package dnsservers_test

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS is a DNS server on 127.0.0.1, UDP and TCP on one port, whose
// answers a test writes: handle returns the messages to send back to
// one query (several over UDP, to test which the client takes; the first
// over TCP).
type fakeDNS struct {
	addr string

	mu     sync.Mutex
	handle func(q query) [][]byte

	udp, tcp atomic.Int64 // queries received
}

// query is a received query.
type query struct {
	ID  uint16
	Q   dnsmessage.Question
	TCP bool
}

func startFakeDNS(t *testing.T, handle func(q query) [][]byte) *fakeDNS {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 5 { // the TCP port of the same number may be taken
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no UDP and TCP port pair free on 127.0.0.1")
	}
	f := &fakeDNS{addr: pc.LocalAddr().String(), handle: handle}
	var wg sync.WaitGroup
	wg.Go(func() { f.serveUDP(pc) })
	wg.Go(func() { f.serveTCP(ln) })
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		wg.Wait()
	})
	return f
}

// setHandle replaces the answers of the server.
func (f *fakeDNS) setHandle(h func(q query) [][]byte) {
	f.mu.Lock()
	f.handle = h
	f.mu.Unlock()
}

func (f *fakeDNS) answers(q query) [][]byte {
	f.mu.Lock()
	h := f.handle
	f.mu.Unlock()
	return h(q)
}

func (f *fakeDNS) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q, ok := parseQuery(buf[:n])
		if !ok {
			continue
		}
		f.udp.Add(1)
		for _, m := range f.answers(q) {
			pc.WriteTo(m, from)
		}
	}
}

func (f *fakeDNS) serveTCP(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			var n [2]byte
			if _, err := io.ReadFull(c, n[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint16(n[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			q, ok := parseQuery(msg)
			if !ok {
				return
			}
			q.TCP = true
			f.tcp.Add(1)
			if out := f.answers(q); len(out) > 0 {
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out[0]))))
				c.Write(out[0])
			}
		})
	}
}

func parseQuery(msg []byte) (query, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return query{}, false
	}
	q, err := p.Question()
	if err != nil {
		return query{}, false
	}
	return query{ID: h.ID, Q: q}, true
}

// msg builds a response to q with the code rcode and the answer records
// rrs, then the additional records extra; tc sets the truncation bit.
type msg struct {
	rcode dnsmessage.RCode
	tc    bool
	id    uint16 // 0: q's
	qname string // "": q's
	rrs   []dnsmessage.Resource
	extra []dnsmessage.Resource
}

func (m msg) pack(t testing.TB, q query) []byte {
	id := q.ID
	if m.id != 0 {
		id = m.id
	}
	qq := q.Q
	if m.qname != "" {
		qq.Name = dnsmessage.MustNewName(m.qname)
	}
	out := dnsmessage.Message{
		Header:      dnsmessage.Header{ID: id, Response: true, RCode: m.rcode, Truncated: m.tc, RecursionAvailable: true},
		Questions:   []dnsmessage.Question{qq},
		Answers:     m.rrs,
		Additionals: m.extra,
	}
	b, err := out.Pack()
	if err != nil {
		t.Error(err)
	}
	return b
}

func rrHeader(name string, t dnsmessage.Type, ttl uint32) dnsmessage.ResourceHeader {
	return dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: t, Class: dnsmessage.ClassINET, TTL: ttl}
}

func a(name, ip string, ttl uint32) dnsmessage.Resource {
	addr := netip.MustParseAddr(ip)
	if addr.Is4() {
		return dnsmessage.Resource{Header: rrHeader(name, dnsmessage.TypeA, ttl), Body: &dnsmessage.AResource{A: addr.As4()}}
	}
	return dnsmessage.Resource{Header: rrHeader(name, dnsmessage.TypeAAAA, ttl), Body: &dnsmessage.AAAAResource{AAAA: addr.As16()}}
}

func cname(name, target string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{Header: rrHeader(name, dnsmessage.TypeCNAME, ttl), Body: &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)}}
}

func srv(name, target string, prio, weight, port uint16, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{Header: rrHeader(name, dnsmessage.TypeSRV, ttl),
		Body: &dnsmessage.SRVResource{Target: dnsmessage.MustNewName(target), Priority: prio, Weight: weight, Port: port}}
}

// zone answers from a fixed set of records: the records of the question's
// name and type, NXDOMAIN for names it has no record of.
func zone(t testing.TB, rrs ...dnsmessage.Resource) func(q query) [][]byte {
	return func(q query) [][]byte {
		var ans []dnsmessage.Resource
		known := false
		for _, rr := range rrs {
			if rr.Header.Name.String() == q.Q.Name.String() {
				known = true
				if rr.Header.Type == q.Q.Type {
					ans = append(ans, rr)
				}
			}
		}
		m := msg{rrs: ans}
		if !known {
			m.rcode = dnsmessage.RCodeNameError
		}
		return [][]byte{m.pack(t, q)}
	}
}
