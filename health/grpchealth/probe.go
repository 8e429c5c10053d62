package grpchealth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/lbkit/lbkit/health"
)

// Bounds of what a check accepts from a server.
const (
	maxReply  = 4 << 10  // bytes of the Check response message
	maxHeader = 16 << 10 // bytes of response header and trailer fields
)

// Probe is a health.Probe that calls grpc.health.v1.Health/Check. The zero
// value checks the server as a whole (service "") over cleartext HTTP/2.
// A Probe is a value, safe for concurrent use by the Monitor's checks.
type Probe struct {
	// Service is the service name sent in the HealthCheckRequest; empty,
	// the default, asks about the server as a whole.
	Service string

	// TLS, when not nil, makes the check speak TLS (with ALPN "h2"). It is
	// cloned, never modified; an empty ServerName means the checked
	// address's host (an IP address is verified against the certificate's
	// IP addresses). Pass the configuration the proxy uses towards the
	// servers (lb.ReverseProxy.TLSClientConfig). Nil, the default, means
	// cleartext HTTP/2 with prior knowledge (h2c).
	TLS *tls.Config

	// Authority is the :authority of the call; empty means the TLS server
	// name, else the checked address.
	Authority string
}

// Check implements health.Probe: it returns nil when the server answers
// SERVING for p.Service before ctx's deadline.
func (p Probe) Check(ctx context.Context, t health.Target) error {
	var a attempt
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	authority := t.Addr
	if p.TLS != nil {
		cfg := p.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = hostOf(t.Addr)
		}
		authority = cfg.ServerName
		creds = &recordingCreds{TransportCredentials: credentials.NewTLS(cfg), a: &a}
	}
	if p.Authority != "" {
		authority = p.Authority
	}
	cc, err := grpc.NewClient("passthrough:///"+t.Addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			// The check's context, not grpc-go's: the connection gets the
			// check's deadline.
			c, err := t.Connect(ctx)
			a.set(&a.dial, err)
			return c, err
		}),
		grpc.WithNoProxy(),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
		grpc.WithDisableHealthCheck(),
		grpc.WithUserAgent("lbkit-health"),
		grpc.WithMaxHeaderListSize(maxHeader),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxReply)),
	)
	if err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: p.Service})
	if err != nil {
		return p.callError(ctx, &a, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc: %w: %s%s", health.ErrRefused, s, p.about())
	}
	return nil
}

// callError turns a failed Check call into the probe's error, with the
// cause of a failed connection or handshake when there was one.
func (p Probe) callError(ctx context.Context, a *attempt, err error) error {
	if derr := a.get(&a.dial); derr != nil {
		return fmt.Errorf("grpc: %w", derr)
	}
	if herr := a.get(&a.handshake); herr != nil {
		return fmt.Errorf("grpc: %w", health.HandshakeError(herr))
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The call failed by the deadline: grpc-go reports DEADLINE_EXCEEDED,
		// or UNAVAILABLE when the connection's deadline (the same) struck
		// before the context's.
		return fmt.Errorf("grpc: no reply before the timeout%s: %w", p.about(), context.DeadlineExceeded)
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("grpc: %w: unknown service %q", health.ErrRefused, p.Service)
	case codes.Unimplemented:
		return fmt.Errorf("grpc: %w: the server does not implement grpc.health.v1.Health (%s)", health.ErrUnexpected, st.Message())
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.Canceled:
		// The connection broke or the reply was not gRPC.
		return fmt.Errorf("grpc: %s: %s", st.Code(), st.Message())
	}
	return fmt.Errorf("grpc: %w: status %s: %s", health.ErrRefused, st.Code(), st.Message())
}

// about names the service checked, for error messages.
func (p Probe) about() string {
	if p.Service == "" {
		return ""
	}
	return fmt.Sprintf(" (service %q)", p.Service)
}

// attempt records why one check's connection failed; grpc-go reports only
// a status with the text of the cause.
type attempt struct {
	mu        sync.Mutex
	dial      error
	handshake error
}

func (a *attempt) set(field *error, err error) {
	if err == nil {
		return
	}
	a.mu.Lock()
	*field = err
	a.mu.Unlock()
}

func (a *attempt) get(field *error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return *field
}

// recordingCreds records the error of a failed TLS handshake in its
// attempt.
type recordingCreds struct {
	credentials.TransportCredentials
	a *attempt
}

func (c *recordingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	c.a.set(&c.a.handshake, err)
	return nc, info, err
}

func (c *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), a: c.a}
}

// hostOf is the host of host[:port], without IPv6 brackets.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

var _ health.Probe = Probe{}
