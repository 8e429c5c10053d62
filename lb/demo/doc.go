// Package demo starts throw-away servers on loopback for trying a load
// balancer out, in the spirit of net/http/httptest: backends that name
// themselves in every answer, so that a client sees which one served it, and
// a certificate authority generated at run time for TLS demos.
//
// It imports only the standard library (not testing, nor lbkit's adapters),
// so programs may use it as well as tests. Everything it starts listens on
// 127.0.0.1 and stops when the context given to it is done.
//
// Usage:
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//	defer stop()
//	addrs, err := demo.HTTPBackends(ctx, 3) // backend-1, backend-2, backend-3
//	if err != nil {
//		return err
//	}
//	pool := &lb.Pool{Name: "web"}
//	var servers []lb.Server
//	for i, addr := range addrs {
//		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr})
//	}
//	if err := pool.Update(servers); err != nil {
//		return err
//	}
//
// For TLS, [NewCA] makes an authority whose [CA.Issue] signs server
// certificates and whose [CA.Pool] verifies them; [TLSBackends] and
// [HTTPSBackends] start servers presenting its certificates.
package demo
