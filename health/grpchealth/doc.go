// Package grpchealth checks gRPC servers with the standard gRPC health
// checking protocol (grpc.health.v1.Health/Check), as a health.Probe for a
// health.Monitor.
//
// Each check opens one connection through health.Target.Connect (so the
// check port, the Monitor's timeout, the Pool's Dial and the PROXY LOCAL
// header apply), speaks HTTP/2 over TLS, or cleartext HTTP/2 (h2c, prior
// knowledge) when TLS is nil, sends one Check call for Service and closes
// the connection. A server is up when it answers SERVING; NOT_SERVING,
// SERVICE_UNKNOWN, an unknown service (NOT_FOUND) or any other status
// fails the check. Replies are bounded (4 KiB messages, 16 KiB of
// headers); service configs, retries and proxies from the environment are
// disabled, so a check is exactly one call on one connection.
//
// grpc-go is imported here, not in package health: programs that do not
// check gRPC servers do not link it.
//
// # Usage
//
//	mon := &health.Monitor{
//		Probe: grpchealth.Probe{Service: "shop.Cart", TLS: toServers},
//	}
//	pool := &lb.Pool{Name: "cart", HealthChecker: mon}
//
// Check statuses (lb.CheckResult.Status) follow HAProxy's: L4CON or L4TOUT
// when the connection fails, L6RSP or L6TOUT for the TLS handshake, L7TOUT
// without a reply in time, L7STS when the server answers with a status
// other than SERVING (the gRPC status code, or the serving status, is in
// the error text), L7RSP when it does not implement the health service.
package grpchealth
