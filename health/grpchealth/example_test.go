package grpchealth_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	grpchealthsrv "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/health/grpchealth"
)

// A grpc-go server with the standard health service, checked over h2c.
func ExampleProbe() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	hs := grpchealthsrv.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("shop.Stock", healthpb.HealthCheckResponse_NOT_SERVING)
	go srv.Serve(ln)
	defer srv.Stop()

	target := health.Target{Addr: ln.Addr().String()}
	for _, service := range []string{"shop.Cart", "shop.Stock", "shop.Nothing"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fmt.Println(service, grpchealth.Probe{Service: service}.Check(ctx, target))
		cancel()
	}
	// Output:
	// shop.Cart <nil>
	// shop.Stock grpc: health: check refused: NOT_SERVING (service "shop.Stock")
	// shop.Nothing grpc: health: check refused: unknown service "shop.Nothing"
}
