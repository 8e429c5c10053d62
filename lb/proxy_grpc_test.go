package lb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// The gRPC tests run a grpc-go server behind lb.ReverseProxy and grpc-go
// clients in front of it, in each of grpcModes: the way the clients, the
// proxy and the servers speak to each other.

// grpcMode is one way of carrying gRPC through the proxy.
type grpcMode struct {
	name string
	// serverCreds are the grpc-go server's transport credentials.
	serverCreds func(ca *testutil.CA, t *testing.T) credentials.TransportCredentials
	// configure sets the proxy's side towards the servers.
	configure func(ca *testutil.CA, p *lb.ReverseProxy)
	// serve serves h on l as the proxy's frontend.
	serve func(ca *testutil.CA, t *testing.T, srv *http.Server, l net.Listener) error
	// clientCreds are the grpc-go client's transport credentials.
	clientCreds func(ca *testutil.CA) credentials.TransportCredentials
	// httpClient is a plain HTTP/2 client of the frontend.
	httpClient func(ca *testutil.CA) *http.Client
	scheme     string // the frontend's URL scheme
}

var grpcModes = []grpcMode{{
	// HTTP/2 over TLS on both sides: the clients negotiate h2 with the
	// frontend by ALPN, the proxy with the servers (ServerHTTP2).
	name: "tls",
	serverCreds: func(ca *testutil.CA, t *testing.T) credentials.TransportCredentials {
		return credentials.NewTLS(ca.ServerConfig(t, "backend.test"))
	},
	configure: func(ca *testutil.CA, p *lb.ReverseProxy) {
		p.Scheme = "https"
		p.ServerHTTP2 = true
		p.TLSClientConfig = ca.ClientConfig("backend.test")
	},
	serve: func(ca *testutil.CA, t *testing.T, srv *http.Server, l net.Listener) error {
		srv.TLSConfig = ca.ServerConfig(t, "proxy.test")
		return srv.ServeTLS(l, "", "")
	},
	clientCreds: func(ca *testutil.CA) credentials.TransportCredentials {
		return credentials.NewTLS(ca.ClientConfig("proxy.test"))
	},
	httpClient: func(ca *testutil.CA) *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig:   ca.ClientConfig("proxy.test"),
			ForceAttemptHTTP2: true,
		}, Timeout: 10 * time.Second}
	},
	scheme: "https",
}, {
	// HTTP/2 with prior knowledge in cleartext on both sides: h2c clients
	// of a frontend set up by ConfigureHTTP2, h2c servers (ServerH2C).
	name: "h2c",
	serverCreds: func(*testutil.CA, *testing.T) credentials.TransportCredentials {
		return insecure.NewCredentials()
	},
	configure: func(_ *testutil.CA, p *lb.ReverseProxy) {
		p.ServerH2C = true
	},
	serve: func(_ *testutil.CA, t *testing.T, srv *http.Server, l net.Listener) error {
		if err := lb.ConfigureHTTP2(srv, lb.HTTP2Options{Cleartext: true}); err != nil {
			return err
		}
		return srv.Serve(l)
	},
	clientCreds: func(*testutil.CA) credentials.TransportCredentials {
		return insecure.NewCredentials()
	},
	httpClient: func(*testutil.CA) *http.Client {
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: protos}, Timeout: 10 * time.Second}
	},
	scheme: "http",
}}

// Methods of the test service, lbtest.Echo. Its messages are
// wrapperspb.StringValue, so that no generated code is needed.
const (
	echoUnary  = "/lbtest.Echo/Unary"
	echoServer = "/lbtest.Echo/ServerStream"
	echoClient = "/lbtest.Echo/ClientStream"
	echoBidi   = "/lbtest.Echo/Bidi"
)

// echoService implements lbtest.Echo. Unary answers its input, with header
// and trailer metadata, and special inputs:
//
//   - "fail": the status FAILED_PRECONDITION with a non-ASCII message;
//   - "deadline": the time left before the call's deadline, or "none";
//   - "block": nothing until the call ends; it signals started on entering
//     and sends the call's end to ended.
//
// ServerStream sends "1", then waits for next (nil: does not wait), then
// sends "2". ClientStream joins what it received with ",". Bidi answers
// each message; after "block" it waits for the end of the call and sends
// it to ended.
type echoService struct {
	next    chan struct{}
	started chan struct{}
	ended   chan error
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "lbtest.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*echoService).unary(ctx, in.Value)
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", ServerStreams: true, Handler: func(srv any, s grpc.ServerStream) error {
			return srv.(*echoService).serverStream(s)
		}},
		{StreamName: "ClientStream", ClientStreams: true, Handler: func(srv any, s grpc.ServerStream) error {
			return srv.(*echoService).clientStream(s)
		}},
		{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(srv any, s grpc.ServerStream) error {
			return srv.(*echoService).bidi(s)
		}},
	},
}

func (e *echoService) unary(ctx context.Context, v string) (any, error) {
	grpc.SetHeader(ctx, metadata.Pairs("x-header", "h-"+v))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+v, "x-trailer-bin", "\x00\xff"))
	switch v {
	case "fail":
		return nil, status.Error(codes.FailedPrecondition, "échec: 100% sûr\n")
	case "deadline":
		dl, ok := ctx.Deadline()
		if !ok {
			return wrapperspb.String("none"), nil
		}
		return wrapperspb.String(time.Until(dl).String()), nil
	case "block":
		e.started <- struct{}{}
		<-ctx.Done()
		e.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	return wrapperspb.String(v), nil
}

func (e *echoService) serverStream(s grpc.ServerStream) error {
	in := new(wrapperspb.StringValue)
	if err := s.RecvMsg(in); err != nil {
		return err
	}
	if err := s.SendMsg(wrapperspb.String("1")); err != nil {
		return err
	}
	if e.next != nil {
		select {
		case <-e.next:
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
	s.SetTrailer(metadata.Pairs("x-count", "2"))
	return s.SendMsg(wrapperspb.String("2"))
}

func (e *echoService) clientStream(s grpc.ServerStream) error {
	var got []string
	for {
		in := new(wrapperspb.StringValue)
		err := s.RecvMsg(in)
		if err == io.EOF {
			return s.SendMsg(wrapperspb.String(strings.Join(got, ",")))
		}
		if err != nil {
			return err
		}
		got = append(got, in.Value)
	}
}

func (e *echoService) bidi(s grpc.ServerStream) error {
	for {
		in := new(wrapperspb.StringValue)
		err := s.RecvMsg(in)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if in.Value == "block" {
			e.started <- struct{}{}
			<-s.Context().Done()
			e.ended <- s.Context().Err()
			return s.Context().Err()
		}
		if err := s.SendMsg(wrapperspb.String("re: " + in.Value)); err != nil {
			return err
		}
	}
}

// startGRPCBackend serves svc with grpc-go on a loopback port and returns
// its address.
func startGRPCBackend(t *testing.T, m grpcMode, ca *testutil.CA, svc *echoService) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := grpc.NewServer(grpc.Creds(m.serverCreds(ca, t)))
	srv.RegisterService(&echoDesc, svc)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return l.Addr().String()
}

// startGRPCProxy serves proxy as m's frontend on a loopback port and
// returns its address.
func startGRPCProxy(t *testing.T, m grpcMode, ca *testutil.CA, proxy *lb.ReverseProxy) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); m.serve(ca, t, srv, l) }()
	t.Cleanup(func() { srv.Close(); proxy.Close(); <-done })
	return l.Addr().String()
}

// dialGRPC returns a grpc-go client of the proxy at addr.
func dialGRPC(t *testing.T, m grpcMode, ca *testutil.CA, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(m.clientCreds(ca)))
	must(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcSetup runs an echo server behind a proxy in mode m and returns a
// client of the proxy and the service.
func grpcSetup(t *testing.T, m grpcMode) (*grpc.ClientConn, *echoService) {
	t.Helper()
	cc, svc, _ := grpcSetupProxy(t, m, nil)
	return cc, svc
}

// grpcSetupProxy is grpcSetup, with tune (if not nil) changing the proxy's
// configuration before it starts; it returns the proxy too.
func grpcSetupProxy(t *testing.T, m grpcMode, tune func(*lb.ReverseProxy)) (*grpc.ClientConn, *echoService, *lb.ReverseProxy) {
	t.Helper()
	ca := testutil.NewCA(t)
	svc := &echoService{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	pool := &lb.Pool{Name: "grpc"}
	must(t, pool.Update([]lb.Server{{Addr: startGRPCBackend(t, m, ca, svc)}}))
	proxy := &lb.ReverseProxy{Pool: pool}
	m.configure(ca, proxy)
	if tune != nil {
		tune(proxy)
	}
	return dialGRPC(t, m, ca, startGRPCProxy(t, m, ca, proxy)), svc, proxy
}

// callCtx is the context of one test call: bounded, so that a stalled
// stream fails the test instead of hanging it.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnary(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, _, proxy := grpcSetupProxy(t, m, nil)
			var header, trailer metadata.MD
			out := new(wrapperspb.StringValue)
			err := cc.Invoke(callCtx(t), echoUnary, wrapperspb.String("hello"), out, grpc.Header(&header), grpc.Trailer(&trailer))
			if err != nil {
				t.Fatalf("Unary: %v", err)
			}
			if out.Value != "hello" {
				t.Errorf("reply %q, want hello", out.Value)
			}
			if got := header.Get("x-header"); len(got) != 1 || got[0] != "h-hello" {
				t.Errorf("header x-header = %q, want [h-hello]", got)
			}
			if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t-hello" {
				t.Errorf("trailer x-trailer = %q, want [t-hello]", got)
			}
			if got := trailer.Get("x-trailer-bin"); len(got) != 1 || got[0] != "\x00\xff" {
				t.Errorf("trailer x-trailer-bin = %q, want [\"\\x00\\xff\"]", got)
			}
			// The proxy's transport did not write its ALPN protocols into
			// the configuration, which may be shared (with health checks).
			if cfg := proxy.TLSClientConfig; cfg != nil && cfg.NextProtos != nil {
				t.Errorf("TLSClientConfig.NextProtos set to %q by the proxy", cfg.NextProtos)
			}
		})
	}
}

// TestGRPCStatus checks that the server's grpc-status, its percent-encoded
// grpc-message and its trailer metadata reach the client.
func TestGRPCStatus(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, _ := grpcSetup(t, m)
			var trailer metadata.MD
			err := cc.Invoke(callCtx(t), echoUnary, wrapperspb.String("fail"), new(wrapperspb.StringValue), grpc.Trailer(&trailer))
			st := status.Convert(err)
			if st.Code() != codes.FailedPrecondition || st.Message() != "échec: 100% sûr\n" {
				t.Errorf("status %v %q, want FailedPrecondition %q", st.Code(), st.Message(), "échec: 100% sûr\n")
			}
			if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t-fail" {
				t.Errorf("trailer x-trailer = %q, want [t-fail]", got)
			}
		})
	}
}

// TestGRPCDeadline checks that the client's deadline reaches the server
// (grpc-timeout).
func TestGRPCDeadline(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, _ := grpcSetup(t, m)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out := new(wrapperspb.StringValue)
			if err := cc.Invoke(ctx, echoUnary, wrapperspb.String("deadline"), out); err != nil {
				t.Fatalf("Unary: %v", err)
			}
			left, err := time.ParseDuration(out.Value)
			if err != nil {
				t.Fatalf("server saw no deadline: %q", out.Value)
			}
			if left <= 0 || left > 30*time.Second {
				t.Errorf("server's deadline is %v away, want within (0, 30s]", left)
			}
		})
	}
}

// TestGRPCServerStreaming checks that the proxy forwards each message of a
// response stream as it comes: the server sends its second message only
// after the client received the first. A FlushInterval does not delay
// them: gRPC responses have no Content-Length, and httputil flushes those
// at every write.
func TestGRPCServerStreaming(t *testing.T) {
	for _, m := range grpcModes {
		for _, flush := range []time.Duration{0, time.Hour} {
			t.Run(fmt.Sprintf("%s/flush=%v", m.name, flush), func(t *testing.T) {
				testServerStreaming(t, m, flush)
			})
		}
	}
}

func testServerStreaming(t *testing.T, m grpcMode, flush time.Duration) {
	testutil.CheckLeaks(t)
	cc, svc, _ := grpcSetupProxy(t, m, func(p *lb.ReverseProxy) { p.FlushInterval = flush })
	svc.next = make(chan struct{})
	s, err := cc.NewStream(callCtx(t), &grpc.StreamDesc{ServerStreams: true}, echoServer)
	must(t, err)
	must(t, s.SendMsg(wrapperspb.String("go")))
	must(t, s.CloseSend())
	first := new(wrapperspb.StringValue)
	if err := s.RecvMsg(first); err != nil || first.Value != "1" {
		t.Fatalf("first message %q, %v; want 1", first.GetValue(), err)
	}
	close(svc.next)
	second := new(wrapperspb.StringValue)
	if err := s.RecvMsg(second); err != nil || second.Value != "2" {
		t.Fatalf("second message %q, %v; want 2", second.GetValue(), err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if got := s.Trailer().Get("x-count"); len(got) != 1 || got[0] != "2" {
		t.Errorf("trailer x-count = %q, want [2]", got)
	}
}

func TestGRPCClientStreaming(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, _ := grpcSetup(t, m)
			s, err := cc.NewStream(callCtx(t), &grpc.StreamDesc{ClientStreams: true}, echoClient)
			must(t, err)
			var want []string
			for i := range 100 {
				v := strconv.Itoa(i) + strings.Repeat("x", 1000)
				want = append(want, v)
				must(t, s.SendMsg(wrapperspb.String(v)))
			}
			must(t, s.CloseSend())
			out := new(wrapperspb.StringValue)
			must(t, s.RecvMsg(out))
			if out.Value != strings.Join(want, ",") {
				t.Errorf("server received %d bytes, want the %d messages joined", len(out.Value), len(want))
			}
		})
	}
}

// TestGRPCBidiPingPong checks that request and response bodies both
// stream: each reply comes before the client sends its next message.
func TestGRPCBidiPingPong(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, _ := grpcSetup(t, m)
			s, err := cc.NewStream(callCtx(t), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echoBidi)
			must(t, err)
			for i := range 50 {
				v := fmt.Sprint("ping ", i)
				must(t, s.SendMsg(wrapperspb.String(v)))
				out := new(wrapperspb.StringValue)
				if err := s.RecvMsg(out); err != nil || out.Value != "re: "+v {
					t.Fatalf("reply %d: %q, %v; want %q", i, out.GetValue(), err, "re: "+v)
				}
			}
			must(t, s.CloseSend())
			if err := s.RecvMsg(new(wrapperspb.StringValue)); err != io.EOF {
				t.Fatalf("end of stream: %v, want io.EOF", err)
			}
		})
	}
}

// TestGRPCCancel checks that a client cancelling a call cancels it on the
// server, for a unary call and for a stream.
func TestGRPCCancel(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name+"/unary", func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, svc := grpcSetup(t, m)
			ctx, cancel := context.WithCancel(callCtx(t))
			errc := make(chan error, 1)
			go func() { errc <- cc.Invoke(ctx, echoUnary, wrapperspb.String("block"), new(wrapperspb.StringValue)) }()
			waitServerEnded(t, svc, cancel)
			if err := <-errc; status.Code(err) != codes.Canceled {
				t.Errorf("client got %v, want Canceled", err)
			}
		})
		t.Run(m.name+"/stream", func(t *testing.T) {
			testutil.CheckLeaks(t)
			cc, svc := grpcSetup(t, m)
			ctx, cancel := context.WithCancel(callCtx(t))
			s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echoBidi)
			must(t, err)
			must(t, s.SendMsg(wrapperspb.String("ping")))
			must(t, s.RecvMsg(new(wrapperspb.StringValue)))
			must(t, s.SendMsg(wrapperspb.String("block")))
			waitServerEnded(t, svc, cancel)
			if err := s.RecvMsg(new(wrapperspb.StringValue)); status.Code(err) != codes.Canceled {
				t.Errorf("client got %v, want Canceled", err)
			}
		})
	}
}

// waitServerEnded waits for the call to block in the server, cancels it
// on the client and waits for the server to see the cancellation.
func waitServerEnded(t *testing.T, svc *echoService, cancel context.CancelFunc) {
	t.Helper()
	select {
	case <-svc.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not reach the server within 5 s")
	}
	cancel()
	select {
	case err := <-svc.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server's call ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's call was not cancelled within 5 s of the client's cancellation")
	}
}

// TestGRPCErrors checks that the proxy's own failures reach gRPC clients as
// gRPC statuses: UNAVAILABLE without servers or when the server refuses
// the connection, DEADLINE_EXCEEDED when it does not answer in time.
func TestGRPCErrors(t *testing.T) {
	for _, m := range grpcModes {
		t.Run(m.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ca := testutil.NewCA(t)
			svc := &echoService{started: make(chan struct{}, 1), ended: make(chan error, 1)}
			live := startGRPCBackend(t, m, ca, svc)

			l, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			refused := l.Addr().String()
			l.Close()

			empty := &lb.Pool{Name: "empty"}
			down := &lb.Pool{Name: "down"}
			must(t, down.Update([]lb.Server{{Name: "a", Addr: live}}))
			down.SetHealth("a", lb.StateDown, "test")
			broken := &lb.Pool{Name: "broken"}
			must(t, broken.Update([]lb.Server{{Addr: refused}}))
			slow := &lb.Pool{Name: "slow"}
			must(t, slow.Update([]lb.Server{{Addr: live}}))
			pools := map[string]*lb.Pool{"empty": empty, "down": down, "broken": broken, "slow": slow}

			proxy := &lb.ReverseProxy{
				Route:         func(r *http.Request) *lb.Pool { return pools[r.Header.Get("x-pool")] },
				ServerTimeout: 300 * time.Millisecond,
			}
			m.configure(ca, proxy)
			addr := startGRPCProxy(t, m, ca, proxy)
			cc := dialGRPC(t, m, ca, addr)

			for _, tc := range []struct {
				pool, in string
				code     codes.Code
				msg      string
			}{
				{"empty", "x", codes.Unavailable, "Service Unavailable"},
				{"down", "x", codes.Unavailable, "Service Unavailable"},
				{"broken", "x", codes.Unavailable, "Bad Gateway"},
				{"slow", "block", codes.DeadlineExceeded, "Gateway Timeout"},
			} {
				ctx := metadata.AppendToOutgoingContext(callCtx(t), "x-pool", tc.pool)
				err := cc.Invoke(ctx, echoUnary, wrapperspb.String(tc.in), new(wrapperspb.StringValue))
				if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
					t.Errorf("pool %s: status %v %q, want %v %q", tc.pool, st.Code(), st.Message(), tc.code, tc.msg)
				}
			}
			// The slow server's call ends when the proxy gives up.
			select {
			case <-svc.ended:
			case <-time.After(5 * time.Second):
				t.Error("the slow server's call was not cancelled when the proxy timed out")
			}

			// The answer is a Trailers-Only response: HTTP 200, the status in
			// the header, no body; other requests still get plain text.
			hc := m.httpClient(ca)
			defer hc.CloseIdleConnections()
			for _, ct := range []string{"application/grpc", "application/grpc+proto", "application/grpc-web+proto", "text/plain"} {
				req, err := http.NewRequestWithContext(callCtx(t), "POST", m.scheme+"://"+addr+echoUnary, strings.NewReader("\x00\x00\x00\x00\x00"))
				must(t, err)
				req.Header.Set("Content-Type", ct)
				req.Header.Set("TE", "trailers")
				req.Header.Set("X-Pool", "empty")
				resp, err := hc.Do(req)
				must(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				must(t, err)
				if ct == "text/plain" {
					if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Grpc-Status") != "" {
						t.Errorf("%s: %d, grpc-status %q; want 503 without grpc-status", ct, resp.StatusCode, resp.Header.Get("Grpc-Status"))
					}
					continue
				}
				wantCT := "application/grpc"
				if strings.HasPrefix(ct, "application/grpc-web") {
					wantCT = "application/grpc-web"
				}
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != wantCT ||
					resp.Header.Get("Grpc-Status") != "14" || resp.Header.Get("Grpc-Message") != "Service Unavailable" || len(body) != 0 {
					t.Errorf("%s: %d %q grpc-status %q grpc-message %q body %q; want 200 %s, 14, Service Unavailable, no body",
						ct, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Grpc-Status"),
						resp.Header.Get("Grpc-Message"), body, wantCT)
				}
				if resp.ProtoMajor != 2 {
					t.Errorf("%s: the frontend spoke %s, want HTTP/2", ct, resp.Proto)
				}
			}
		})
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":                  true,
		"application/grpc+proto":            true,
		"Application/GRPC+json":             true,
		"application/grpc;charset=utf-8":    true,
		"application/grpc-web":              true,
		"application/grpc-web-text+proto":   true,
		"application/grpcx":                 false,
		"application/grpc-webx":             false,
		"application/grp":                   false,
		"application/json":                  false,
		"":                                  false,
		"text/plain; x=application/grpc":    false,
		"application/grpc-web-textual+json": false,
	} {
		r := &http.Request{Header: http.Header{"Content-Type": {ct}}}
		if got := lb.IsGRPC(r); got != want {
			t.Errorf("IsGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestWriteGRPCErrorMessage checks the percent-encoding of grpc-message
// against grpc-go's decoding of it.
func TestWriteGRPCErrorMessage(t *testing.T) {
	for _, msg := range []string{"plain text", "100%", "ünïcode\r\nnew line", "\x00\x7f\xff"} {
		w := &testutil.DiscardWriter{H: http.Header{}}
		r := &http.Request{Header: http.Header{"Content-Type": {"application/grpc"}}}
		lb.WriteGRPCError(w, r, lb.GRPCPermissionDenied, msg)
		enc := w.H.Get("Grpc-Message")
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Errorf("%q: grpc-message %q holds byte %#x", msg, enc, enc[i])
			}
		}
		if got := decodeGRPCMessage(enc); got != msg {
			t.Errorf("%q: grpc-message %q decodes to %q", msg, enc, got)
		}
		if got := w.H.Get("Grpc-Status"); got != "7" {
			t.Errorf("%q: grpc-status %q, want 7", msg, got)
		}
	}
}

// decodeGRPCMessage is the decoding of the gRPC specification (and
// grpc-go's internal decodeGrpcMessage).
func decodeGRPCMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestGRPCCodes(t *testing.T) {
	for status, want := range map[int]lb.GRPCCode{
		200: lb.GRPCOK, 400: lb.GRPCInternal, 401: lb.GRPCUnauthenticated, 403: lb.GRPCPermissionDenied,
		404: lb.GRPCUnimplemented, 429: lb.GRPCUnavailable, 502: lb.GRPCUnavailable, 503: lb.GRPCUnavailable,
		504: lb.GRPCUnavailable, 500: lb.GRPCUnknown, 418: lb.GRPCUnknown,
	} {
		if got := lb.GRPCCodeForStatus(status); got != want {
			t.Errorf("GRPCCodeForStatus(%d) = %d, want %d", status, got, want)
		}
	}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err  error
		want lb.GRPCCode
	}{
		{lb.ErrNoServer, lb.GRPCUnavailable},
		{fmt.Errorf("pick: %w", lb.ErrQueueTimeout), lb.GRPCUnavailable},
		{context.DeadlineExceeded, lb.GRPCDeadlineExceeded},
		{timeout, lb.GRPCDeadlineExceeded},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, lb.GRPCUnavailable},
		{io.ErrUnexpectedEOF, lb.GRPCUnavailable},
		{fmt.Errorf("body: %w", lb.ErrBodyTooLarge), lb.GRPCResourceExhausted},
		{lb.ErrTooManyHeaders, lb.GRPCResourceExhausted},
		{fmt.Errorf("chunk: %w", lb.ErrBadFraming), lb.GRPCInternal},
	} {
		if got := lb.GRPCCodeForError(tc.err); got != tc.want {
			t.Errorf("GRPCCodeForError(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
