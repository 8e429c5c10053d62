package park_test

import (
	"fmt"
	"net"
	"time"

	"github.com/lbkit/lbkit/internal/park"
)

// A server parks a keep-alive connection that has no request pending, and
// serves it again on the goroutine ready runs on.
func ExampleParker() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	client, _ := net.Dial("tcp", ln.Addr().String())
	defer client.Close()
	conn, _ := ln.Accept()
	defer conn.Close()

	p := park.New()
	served := make(chan string)
	serve := func(err error) {
		if err != nil { // park.ErrTimeout: the keep-alive timeout
			served <- err.Error()
			return
		}
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		served <- string(buf[:n])
	}
	if _, err := p.Park(conn.(*net.TCPConn), time.Now().Add(30*time.Second), serve); err != nil {
		go serve(nil) // park.ErrUnsupported: wait on a goroutine instead
	}
	fmt.Println("parked:", p.Len())
	client.Write([]byte("GET / HTTP/1.1\r\n"))
	fmt.Printf("served: %q\n", <-served)
	fmt.Println("parked:", p.Len())
	// Output:
	// parked: 1
	// served: "GET / HTTP/1.1\r\n"
	// parked: 0
}
