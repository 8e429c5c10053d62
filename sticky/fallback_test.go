package sticky_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/sticky"
)

// TestStickyFullServerQueues: a client pinned to a server at its MaxConns
// waits for it (the queue rule) instead of moving, while unpinned clients
// go to a server with room.
func TestStickyFullServerQueues(t *testing.T) {
	for _, tc := range []struct {
		name string
		aff  lb.Affinity
		req  func(cookie string) lb.PickInfo
	}{
		{"cookie", &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}, func(cookie string) lb.PickInfo {
			r := httptest.NewRequest("GET", "/", nil)
			if cookie != "" {
				r.Header.Set("Cookie", cookie)
			}
			return lb.PickInfo{Request: r, Client: info("10.0.0.1").Client}
		}},
		{"table", &sticky.SourceIP{}, func(cookie string) lb.PickInfo {
			if cookie == "" {
				return info("10.0.0.2")
			}
			return info("10.0.0.1")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &lb.Pool{Name: "q", Affinity: tc.aff, QueueTimeout: 20 * time.Millisecond}
			must(t, p.Update([]lb.Server{{Name: "a", Addr: "192.0.2.1:1", MaxConns: 1}, {Name: "b", Addr: "192.0.2.1:2"}}))
			a := server(t, p, "a")
			cookie := ""
			if ck, ok := tc.aff.(*sticky.Cookie); ok {
				cookie = "LBSTICKY=" + issue(t, ck, p, "a")
			} else {
				tc.aff.Pin(info("10.0.0.1"), a)
				cookie = "pinned" // selects the pinned client address
			}
			held, err := p.Acquire(context.Background(), tc.req(cookie))
			must(t, err)
			if held.Server.Name != "a" || !held.Sticky {
				t.Fatalf("pinned client got %s (sticky %v)", held.Server.Name, held.Sticky)
			}
			// a is full: the pinned client queues and times out...
			if l, err := p.Acquire(context.Background(), tc.req(cookie)); !errors.Is(err, lb.ErrQueueTimeout) {
				if err == nil {
					l.Done(lb.Outcome{})
				}
				t.Fatalf("pinned client with its server full: %v, want queue timeout", err)
			}
			// ...while a new client goes to b.
			l, err := p.Acquire(context.Background(), tc.req(""))
			must(t, err)
			l.Done(lb.Outcome{})
			if l.Server.Name != "b" {
				t.Fatalf("new client went to %s", l.Server.Name)
			}
			// Once a has room, the pinned client gets it back.
			held.Done(lb.Outcome{})
			l, err = p.Acquire(context.Background(), tc.req(cookie))
			must(t, err)
			l.Done(lb.Outcome{})
			if l.Server.Name != "a" || !l.Sticky {
				t.Fatalf("pinned client got %s (sticky %v)", l.Server.Name, l.Sticky)
			}
		})
	}
}

// TestStickyConcurrentChanges looks up and pins from several goroutines
// while servers flap, for the race detector and to check that a lookup
// only ever returns a server of the snapshot it was given.
func TestStickyConcurrentChanges(t *testing.T) {
	testutil.CheckLeaks(t)
	p := poolOf(t, "a", "b", "c", "d")
	ck := &sticky.Cookie{Keys: []sticky.Key{{Secret: key1}}}
	table := &sticky.SourceIP{MaxEntries: 64}
	cookies := []string{}
	for _, n := range []string{"a", "b", "c", "d"} {
		cookies = append(cookies, "LBSTICKY="+issue(t, ck, p, n))
	}
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/", nil)
			for i := range 3000 {
				lookups.Add(1)
				r.Header.Set("Cookie", cookies[(g+i)%len(cookies)])
				in := info("10.0.0.1")
				in.Client = netipFrom(byte(i % 200))
				in.Request = r
				snap := p.Snapshot()
				if len(snap.Servers) == 0 {
					continue
				}
				for _, aff := range []lb.Affinity{ck, table} {
					s, ok := aff.Lookup(snap, in)
					if ok && !inSnap(snap, s) {
						t.Errorf("lookup returned %s, not in its snapshot", s.Name)
						return
					}
					if !ok {
						s = snap.Servers[i%len(snap.Servers)]
						aff.Pin(in, s)
					}
					aff.(lb.ResponseAffinity).PinResponse(http.Header{}, in, s, ok)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	states := []lb.State{lb.StateDown, lb.StateUp}
	flips := 0
flip:
	for ; flips < 1e6; flips++ {
		select {
		case <-done:
			break flip
		default:
		}
		p.SetState([]string{"a", "b", "c", "d"}[flips%4], states[(flips/4)%2], "")
	}
	<-done
	if lookups.Load() != 4*3000 || flips == 0 {
		t.Fatalf("%d lookups, %d state changes", lookups.Load(), flips)
	}
	if st := table.Stats(); st.Entries > 64 {
		t.Fatalf("table grew to %d entries", st.Entries)
	}
}

func inSnap(snap *lb.Snapshot, s *lb.Server) bool {
	for _, sv := range snap.Servers {
		if sv == s {
			return true
		}
	}
	return false
}
