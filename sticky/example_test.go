package sticky_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// A cookie-sticky HTTP load balancer: the first response sets the cookie,
// and a client that sends it back stays on its server.
func ExampleCookie() {
	var servers []lb.Server
	for _, name := range []string{"blue", "green", "red"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		defer s.Close()
		servers = append(servers, lb.Server{Name: name, Addr: s.Listener.Addr().String()})
	}
	ck := &sticky.Cookie{
		Cookie: http.Cookie{Name: "SRV", HttpOnly: true, SameSite: http.SameSiteLaxMode},
		Keys:   []sticky.Key{{Secret: []byte("an example secret of 32 bytes..")}},
	}
	if err := ck.Validate(); err != nil {
		panic(err)
	}
	pool := &lb.Pool{Name: "web", Affinity: ck}
	if err := pool.Update(servers); err != nil {
		panic(err)
	}
	proxy := &lb.ReverseProxy{Pool: pool}
	front := httptest.NewServer(proxy)
	defer front.Close()

	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second}
	seen := map[string]int{}
	for i := range 5 {
		resp, err := client.Get(front.URL)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body)]++
		if i == 0 {
			c := resp.Cookies()[0]
			fmt.Println("cookie:", c.Name, "HttpOnly:", c.HttpOnly)
			fmt.Println("value reveals the server:", strings.Contains(c.Value, string(body)) || strings.Contains(c.Value, "127.0.0.1"))
		}
	}
	fmt.Println("servers seen:", len(seen))
	// Output:
	// cookie: SRV HttpOnly: true
	// value reveals the server: false
	// servers seen: 1
}

// Source-address stickiness: a client is pinned to the server it was first
// given, until the entry expires or the server goes.
func ExampleSourceIP() {
	pool := &lb.Pool{Name: "db"}
	if err := pool.Update([]lb.Server{{Name: "a", Addr: "10.0.0.1:5432"}, {Name: "b", Addr: "10.0.0.2:5432"}}); err != nil {
		panic(err)
	}
	table := &sticky.SourceIP{
		MaxEntries: 10000,
		TTL:        time.Hour,
		IPv6Prefix: 64, // one pin per /64
		OnMove: func(info lb.PickInfo, from, to string) {
			fmt.Printf("%s moved from %s to %s\n", info.Client.Addr(), from, to)
		},
	}
	client := lb.PickInfo{Client: netip.MustParseAddrPort("[2001:db8::1]:40000")}
	neighbour := lb.PickInfo{Client: netip.MustParseAddrPort("[2001:db8::2]:40000")}

	snap := pool.Snapshot()
	table.Pin(client, snap.Servers[1]) // what the Pool does after its first pick
	if s, ok := table.Lookup(snap, neighbour); ok {
		fmt.Println("same /64 pinned to", s.Name)
	}

	pool.SetState("b", lb.StateDown, "failed checks")
	if _, ok := table.Lookup(pool.Snapshot(), client); !ok {
		fmt.Println("b is down: balance normally")
	}
	table.Pin(client, pool.Snapshot().Servers[0])
	// Output:
	// same /64 pinned to b
	// b is down: balance normally
	// 2001:db8::1 moved from b to a
}
