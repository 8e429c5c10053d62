package http3_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/demo"
	"github.com/lbkit/lbkit/lb/http3"
)

// A ReverseProxy served over HTTPS on a TCP port and over HTTP/3 on the UDP
// port of the same number; the HTTPS responses announce HTTP/3, and
// lb.ServeTLS drains both when ctx ends.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served %s for %s\n", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Addr: backend.Listener.Addr().String()}}); err != nil {
		panic(err)
	}
	proxy := &lb.ReverseProxy{Pool: pool}

	ca, err := demo.NewCA()
	if err != nil {
		panic(err)
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	srv := &http.Server{
		Handler:           http3.AltSvc(port, 0, proxy),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         proxy.ConnState,
	}
	h3 := http3.ForServer(srv) // before srv serves
	h3.Handler = proxy
	go h3.Serve(pc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.ServeTLS(ctx, srv, ln, 10*time.Second, proxy, h3) }()

	client := &http.Client{Transport: &qhttp3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"},
	}}
	resp, err := client.Get("https://" + pc.LocalAddr().String() + "/hello")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Proto, " ", string(body))
	client.CloseIdleConnections()
	cancel()
	fmt.Println("drained:", <-done)
	// Output:
	// HTTP/3.0 served /hello for 127.0.0.1
	// drained: <nil>
}
