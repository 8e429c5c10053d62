package sticky_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// TestCookieAcrossInstances runs three load balancers, each with its own
// Pool, Balancer and Cookie, over the same servers (configured in another
// order on each) and with the same secret: a cookie issued by one is
// honoured by the others, with no state shared but the secret. A fourth
// instance with another secret does not honour it.
func TestCookieAcrossInstances(t *testing.T) {
	testutil.CheckLeaks(t)
	var servers []lb.Server
	for i := range 4 {
		name := fmt.Sprintf("s%d", i)
		servers = append(servers, lb.Server{Name: name, Addr: testutil.HTTPBackend(t, name).Addr})
	}
	instance := func(secret []byte, order ...int) string {
		ck := &sticky.Cookie{Cookie: http.Cookie{Name: "SRV"}, Keys: []sticky.Key{{Secret: secret}}}
		must(t, ck.Validate())
		// balancer.First sends every new client to the first server of
		// its own order: without the cookie the instances disagree.
		pool := &lb.Pool{Name: "web", Balancer: balancer.First{}, Affinity: ck}
		var list []lb.Server
		for _, i := range order {
			list = append(list, servers[i])
		}
		must(t, pool.Update(list))
		proxy := &lb.ReverseProxy{Pool: pool}
		return "http://" + serveHTTP(t, &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}, listen(t), proxy)
	}
	urls := []string{
		instance(key1, 0, 1, 2, 3),
		instance(key1, 1, 2, 3, 0),
		instance(key1, 3, 2, 1, 0),
	}
	other := instance(key2, 3, 2, 1, 0)
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()

	for first, url := range urls {
		home, h := do(t, c, url)
		cookie := h.Get("Set-Cookie")
		if cookie == "" {
			t.Fatalf("instance %d set no cookie", first)
		}
		cookie, _, _ = strings.Cut(cookie, ";")
		for i, u := range urls {
			if got, _ := do(t, c, u, cookie); got != home {
				t.Fatalf("cookie from instance %d (%s) sent to %s by instance %d", first, home, got, i)
			}
		}
		if got, _ := do(t, c, other, cookie); got != "s3" {
			t.Fatalf("an instance with another secret sent the cookie of %s to %s, want its own first server s3", home, got)
		}
	}
}
