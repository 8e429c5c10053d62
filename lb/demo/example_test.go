package demo_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"

	"github.com/lbkit/lbkit/lb/demo"
)

func ExampleHTTPBackends() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the backends
	addrs, err := demo.HTTPBackends(ctx, 2)
	if err != nil {
		log.Fatal(err)
	}
	for _, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Header.Get("X-Backend"))
	}
	// Output:
	// backend-1
	// backend-2
}

func ExampleCA() {
	ca, err := demo.NewCA()
	if err != nil {
		log.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	_, err = cert.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: ca.Pool()})
	fmt.Println("verified:", err == nil)
	// Output:
	// verified: true
}
