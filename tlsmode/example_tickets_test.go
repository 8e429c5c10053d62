package tlsmode_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/tlsmode"
)

// An HTTPS and an L4 TLS frontend share session ticket keys, rotated
// daily: a session begun on one resumes on the other. The HTTPS responses
// carry a year of HSTS.
func ExampleTicketKeys() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the rotation
	certs := &tlsmode.Store{}
	certs.Add(selfSigned("example.com"))
	keys := &tlsmode.TicketKeys{}
	go keys.Run(ctx)
	front := tlsmode.Config{Certificates: certs, TicketKeys: keys}

	pool := &lb.Pool{Name: "web"}
	pool.Update([]lb.Server{{Addr: "10.0.0.7:80"}})
	hsts := tlsmode.HSTS{MaxAge: 365 * 24 * time.Hour, IncludeSubDomains: true}
	srv := &http.Server{
		Handler:   hsts.Handler(&lb.ReverseProxy{Pool: pool}),
		TLSConfig: front.HTTPConfig(),
	}
	l4 := &lb.TCPFrontend{Backend: tlsmode.Offload(front.ServerConfig(), pool)}
	_, _ = srv, l4
	fmt.Println(hsts)
	// Output: max-age=31536000; includeSubDomains
}
