package dnsservers_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/dnsservers"
)

// A pool takes its servers from an SRV record: the lowest priority serves,
// the higher one stands by as backup, and the weights come from the
// records. Here the DNS server is a small one on loopback (exampleDNS).
func Example() {
	addr, stop := exampleDNS()
	defer stop()

	src := &dnsservers.Source{
		Name:     "_http._tcp.web.example",
		SRV:      true,
		Server:   addr,                     // default: /etc/resolv.conf's nameservers
		Interval: time.Minute,              // default 30 s, or sooner by TTL
		Template: lb.Server{MaxConns: 100}, // copied onto every server
	}
	pool := &lb.Pool{Name: "web"}
	_, changed := pool.Members()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, pool) }()

	// Run updates the pool as soon as the first answer is in.
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		fmt.Println("no answer:", src.Stats().LastError)
	}
	for _, s := range pool.Status() {
		fmt.Printf("%s weight %d backup %v\n", s.Name, s.Weight, s.Backup)
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// 10.0.0.1:8080 weight 3 backup false
	// 10.0.0.2:8081 weight 1 backup false
	// 10.0.0.3:8080 weight 1 backup true
	// context canceled
}

// Resolve answers once, for programs that manage the pool themselves.
func ExampleSource_Resolve() {
	addr, stop := exampleDNS()
	defer stop()

	src := &dnsservers.Source{Name: "app.web.example", Port: 9000, Server: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	servers, err := src.Resolve(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range servers {
		fmt.Println(s.Addr)
	}
	// Output:
	// 10.0.0.1:9000
	// [fd00::1]:9000
}

// exampleDNS serves a small zone over UDP on 127.0.0.1 and returns its
// address and a function that stops it.
func exampleDNS() (addr string, stop func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	name := dnsmessage.MustNewName
	rr := func(n string, body dnsmessage.ResourceBody) dnsmessage.Resource {
		t := dnsmessage.TypeA
		switch body.(type) {
		case *dnsmessage.AAAAResource:
			t = dnsmessage.TypeAAAA
		case *dnsmessage.SRVResource:
			t = dnsmessage.TypeSRV
		}
		return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: name(n), Type: t, Class: dnsmessage.ClassINET, TTL: 60}, Body: body}
	}
	zone := []dnsmessage.Resource{
		rr("_http._tcp.web.example.", &dnsmessage.SRVResource{Priority: 10, Weight: 3, Port: 8080, Target: name("a.web.example.")}),
		rr("_http._tcp.web.example.", &dnsmessage.SRVResource{Priority: 10, Weight: 1, Port: 8081, Target: name("b.web.example.")}),
		rr("_http._tcp.web.example.", &dnsmessage.SRVResource{Priority: 20, Weight: 1, Port: 8080, Target: name("c.web.example.")}),
		rr("a.web.example.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}}),
		rr("b.web.example.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 2}}),
		rr("c.web.example.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 3}}),
		rr("app.web.example.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}}),
		rr("app.web.example.", &dnsmessage.AAAAResource{AAAA: [16]byte{0: 0xfd, 15: 1}}),
	}
	done := make(chan struct{})
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
			q := m.Questions[0]
			m.Header.Response = true
			m.Answers, m.Additionals = nil, nil
			for _, r := range zone {
				if r.Header.Name == q.Name && r.Header.Type == q.Type {
					m.Answers = append(m.Answers, r)
				}
			}
			if out, err := m.Pack(); err == nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String(), func() { pc.Close(); <-done }
}
