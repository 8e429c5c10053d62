package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// A Pool balances over its servers; backups take over only when no regular
// server is pickable, and Status reports why.
func ExamplePool() {
	pool := &lb.Pool{Name: "db"}
	if err := pool.Update([]lb.Server{
		{Name: "primary", Addr: "10.0.0.1:5432"},
		{Name: "replica", Addr: "10.0.0.2:5432", Backup: true},
	}); err != nil {
		panic(err)
	}
	pick := func() string {
		lease, err := pool.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			return err.Error()
		}
		defer lease.Done(lb.Outcome{})
		return lease.Server.Name
	}
	fmt.Println(pick())
	pool.SetState("primary", lb.StateDown, "connection refused")
	fmt.Println(pick())
	for _, st := range pool.Status() {
		fmt.Printf("%s %s %q\n", st.Name, st.State, st.Reason)
	}
	pool.SetState("replica", lb.StateMaintenance, "")
	fmt.Println(pick())
	// Output:
	// primary
	// replica
	// primary down "connection refused"
	// replica up ""
	// lb: no server available
}

// ReverseProxy is the L7 path: an http.Handler in front of a Pool.
func ExampleReverseProxy() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served %s for %s\n", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()

	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Addr: backend.Listener.Addr().String()}}); err != nil {
		panic(err)
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	front := httptest.NewServer(proxy)
	defer front.Close()

	resp, err := http.Get(front.URL + "/hello")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: served /hello for 127.0.0.1
}

// A NewTransport hook can wrap the proxy's own engine (ServerTransport):
// here it counts the round trips to the servers of each Pool.
func ExampleReverseProxy_ServerTransport() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer backend.Close()

	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Addr: backend.Listener.Addr().String()}}); err != nil {
		panic(err)
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	var trips atomic.Int64
	proxy.NewTransport = func(p *lb.Pool, dial lb.DialFunc) http.RoundTripper {
		engine := proxy.ServerTransport(dial, nil)
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			trips.Add(1)
			return engine.RoundTrip(r)
		})
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	for range 3 {
		resp, err := http.Get(front.URL)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	fmt.Println("round trips:", trips.Load())
	// Output: round trips: 3
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TCPFrontend is the L4 frontend: here it serves a Pool of one echo server
// until the context ends, then drains.
func ExampleTCPFrontend() {
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	pool := &lb.Pool{}
	pool.Update([]lb.Server{{Addr: echo.Addr().String()}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- lb.Serve(ctx, &lb.TCPFrontend{Backend: pool}, ln, 5*time.Second) }()

	c, _ := net.Dial("tcp", ln.Addr().String())
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(reply))
	cancel()
	fmt.Println(<-served)
	// Output:
	// ping
	// <nil>
}

// A Mux routes connections by the server name the client asked for.
func ExampleMux() {
	var mux lb.Mux
	name := func(n string) lb.Backend {
		return lb.BackendFunc(func(ctx context.Context, c *lb.Conn) { fmt.Println(n); c.Close() })
	}
	mux.Handle("db.example.com", name("database"))
	mux.Handle("*.example.com", name("web"))
	mux.Default = name("default")
	for _, sni := range []string{"db.example.com", "www.example.com", "other.org"} {
		a, b := net.Pipe()
		b.Close()
		c := lb.NewConn(a, "tls")
		c.Info.SNI = sni
		mux.ServeConn(context.Background(), c)
	}
	// Output:
	// database
	// web
	// default
}

// Stats copies a pool's counters into plain structs: the backend's totals,
// then each server in configuration order. Here four HTTP requests are
// balanced by hand (a ReverseProxy does the same for each request).
func ExamplePool_Stats() {
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{
		{Name: "a", Addr: "10.0.0.1:8080"},
		{Name: "b", Addr: "10.0.0.2:8080"},
	}); err != nil {
		panic(err)
	}
	for _, status := range []int{200, 200, 404, 503} {
		lease, err := pool.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			panic(err)
		}
		lease.Done(lb.Outcome{HTTP: true, Status: status, Received: 512})
	}

	st := pool.Stats()
	fmt.Printf("backend %s: %d requests, 2xx %d, 4xx %d, 5xx %d, %d bytes out, %d timed\n",
		st.Name, st.Requests, st.Responses.Class2xx, st.Responses.Class4xx, st.Responses.Class5xx,
		st.BytesOut, st.TotalTime.Count)
	for _, s := range st.Servers {
		fmt.Printf("server %s (%s): %d sessions, %d in progress, 5xx %d\n",
			s.Name, s.State, s.Total, s.Cur, s.Responses.Class5xx)
	}
	// Output:
	// backend web: 4 requests, 2xx 2, 4xx 1, 5xx 1, 2048 bytes out, 4 timed
	// server a (up): 2 sessions, 0 in progress, 5xx 0
	// server b (up): 2 sessions, 0 in progress, 5xx 1
}

// Limits bound a frontend on its accept path. At L7 the same Limits wraps
// the listener, gives the server its ConnContext and is the proxy's: here a
// client may make 2 requests at once, then 1 per second.
func ExampleLimits() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	pool := &lb.Pool{Name: "web"}
	if err := pool.Update([]lb.Server{{Addr: backend.Listener.Addr().String()}}); err != nil {
		panic(err)
	}

	lim := &lb.Limits{MaxConns: 1000, ClientMaxConns: 10, ClientRate: 1, ClientBurst: 2}
	proxy := &lb.ReverseProxy{Name: "front", Pool: pool, Limits: lim}
	srv := &http.Server{Handler: proxy, ConnContext: lim.ConnContext, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lim.Listener(ln)) // the last wrapper: after a proxyproto.Listener
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for range 3 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			fmt.Println("Retry-After:", ra)
		}
	}
	fmt.Println("denied:", proxy.Stats().Denied)
	// Output:
	// 200 OK
	// 200 OK
	// 429 Too Many Requests
	// Retry-After: 1
	// denied: 1
}
