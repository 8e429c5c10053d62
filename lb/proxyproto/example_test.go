package proxyproto_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

func ExampleV1() {
	info := &lb.ConnInfo{
		Remote: netip.MustParseAddrPort("192.0.2.7:50123"),
		Local:  netip.MustParseAddrPort("198.51.100.1:443"),
	}
	hf := proxyproto.V1()
	var client, check bytes.Buffer
	hf(&client, info, &lb.Server{Name: "web1", Addr: "10.0.0.1:80"})
	hf(&check, nil, &lb.Server{Name: "web1", Addr: "10.0.0.1:80"}) // a health check
	fmt.Printf("%q\n%q\n", client.String(), check.String())
	// Output:
	// "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\n"
	// "PROXY UNKNOWN\r\n"
}

func ExampleV2() {
	info := &lb.ConnInfo{
		Remote: netip.MustParseAddrPort("192.0.2.7:50123"),
		Local:  netip.MustParseAddrPort("198.51.100.1:443"),
		SNI:    "example.com",
	}
	hf := proxyproto.V2(proxyproto.V2Options{Authority: true})
	var buf bytes.Buffer
	hf(&buf, info, &lb.Server{Name: "web1", Addr: "10.0.0.1:80"})
	fmt.Printf("% x\n", buf.Bytes())
	// Output:
	// 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 1a c0 00 02 07 c6 33 64 01 c3 cb 01 bb 02 00 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d
}

func ExampleListener() {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	// Only the upstream load balancer (here, loopback) may send headers.
	ln := &proxyproto.Listener{Listener: inner, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	defer ln.Close()

	// The upstream relays a client's connection.
	up, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer up.Close()
	io.WriteString(up, "PROXY TCP4 192.0.2.7 198.51.100.1 50123 443\r\nhello")

	c, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	data := make([]byte, 5)
	io.ReadFull(c, data)
	fmt.Println(c.RemoteAddr(), string(data))
	// Output: 192.0.2.7:50123 hello
}
