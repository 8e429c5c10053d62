package lb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

// redispatchCases are the attempts per server of one connection or
// request to three refusing servers with Retries 5 (6 attempts), by
// RedispatchEvery, sorted; nil means one or more on every server.
var redispatchCases = []struct {
	every        int
	want         []uint64
	redispatches uint64
}{
	{0, nil, 5},                // every retry elsewhere (the default)
	{1, nil, 5},                // the same
	{2, []uint64{2, 2, 2}, 2},  // retries 2 and 4 move
	{3, []uint64{0, 3, 3}, 1},  // retry 3 moves
	{-1, []uint64{0, 0, 6}, 0}, // never moves
}

// refusingPool is a pool of three servers that refuse connections.
func refusingPool(t *testing.T, every int) *lb.Pool {
	t.Helper()
	pool := &lb.Pool{Name: "dead", Retries: 5, RedispatchEvery: every}
	must(t, pool.Update([]lb.Server{
		{Name: "d1", Addr: testutil.ClosedAddr(t)},
		{Name: "d2", Addr: testutil.ClosedAddr(t)},
		{Name: "d3", Addr: testutil.ClosedAddr(t)},
	}))
	return pool
}

// checkAttempts compares the connection errors of pool's servers with
// what RedispatchEvery should give.
func checkAttempts(t *testing.T, pool *lb.Pool, want []uint64, redispatches uint64) {
	t.Helper()
	ps := pool.Stats()
	var got []uint64
	var sum uint64
	for _, s := range ps.Servers {
		got = append(got, s.ConnectErrors)
		sum += s.ConnectErrors
	}
	slices.Sort(got)
	if want == nil {
		if got[0] == 0 || sum != 6 {
			t.Errorf("attempts per server %v, want 6 over all three", got)
		}
	} else if !slices.Equal(got, want) {
		t.Errorf("attempts per server %v, want %v", got, want)
	}
	if ps.Retries != 5 || ps.Redispatches != redispatches {
		t.Errorf("Retries %d, Redispatches %d; want 5, %d", ps.Retries, ps.Redispatches, redispatches)
	}
}

func TestRedispatchEveryL4(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tt := range redispatchCases {
		t.Run(strconv.Itoa(tt.every), func(t *testing.T) {
			pool := refusingPool(t, tt.every)
			_, addr := startL4(t, pool)
			c := dial(t, addr)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatalf("read %d, %v; want the connection closed", n, err)
			}
			// The frontend closes the client after the last attempt's
			// lease has ended: the counts are final.
			checkAttempts(t, pool, tt.want, tt.redispatches)
		})
	}
}

func TestRedispatchEveryL7(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, tt := range redispatchCases {
		t.Run(strconv.Itoa(tt.every), func(t *testing.T) {
			pool := refusingPool(t, tt.every)
			url, _ := startL7(t, &lb.ReverseProxy{Pool: pool}, time.Second)
			c := client()
			defer c.CloseIdleConnections()
			resp, err := c.Get(url + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 502 {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			checkAttempts(t, pool, tt.want, tt.redispatches)
		})
	}
}

// TestRedispatchEverySucceedsOnTheSameServer checks that a retry on the
// same server, when it connects, serves the connection: a server that
// refuses its first two connections answers the third.
func TestRedispatchEverySucceedsOnTheSameServer(t *testing.T) {
	testutil.CheckLeaks(t)
	a := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "flaky", Retries: 3, RedispatchEvery: -1}
	refusals := 2
	pool.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// Called on one request's goroutine, one attempt after the
		// other.
		if refusals > 0 {
			refusals--
			return nil, errors.New("refused for the test")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: a.Addr}}))
	url, _ := startL7(t, &lb.ReverseProxy{Pool: pool}, time.Second)
	c := client()
	defer c.CloseIdleConnections()
	if code, body, _ := get(t, c, url+"/"); code != 200 || body != "a\n" {
		t.Fatalf("status %d %q", code, body)
	}
	if ps := pool.Stats(); ps.Servers[0].ConnectErrors != 2 || ps.Retries != 2 || ps.Redispatches != 0 {
		t.Errorf("a: %d connect errors, %d retries, %d redispatches; want 2, 2, 0",
			ps.Servers[0].ConnectErrors, ps.Retries, ps.Redispatches)
	}
}
