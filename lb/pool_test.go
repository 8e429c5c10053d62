package lb_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

func servers(addrs ...string) []lb.Server {
	out := make([]lb.Server, len(addrs))
	for i, a := range addrs {
		out[i] = lb.Server{Addr: a}
	}
	return out
}

func names(s *lb.Snapshot) string {
	var b strings.Builder
	for i, sv := range s.Servers {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sv.Name)
	}
	return b.String()
}

func TestUpdateValidates(t *testing.T) {
	tests := []struct {
		name    string
		servers []lb.Server
		wantErr string
	}{
		{"empty address", []lb.Server{{Name: "a"}}, "empty address"},
		{"no port", []lb.Server{{Addr: "127.0.0.1"}}, "missing port"},
		{"negative weight", []lb.Server{{Addr: "127.0.0.1:1", Weight: -1}}, "negative weight"},
		{"negative maxconns", []lb.Server{{Addr: "127.0.0.1:1", MaxConns: -2}}, "negative MaxConns"},
		{"duplicate", []lb.Server{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:1"}}, "duplicate name"},
		{"duplicate name", []lb.Server{{Name: "x", Addr: "127.0.0.1:1"}, {Name: "x", Addr: "127.0.0.1:2"}}, "duplicate name"},
		{"ok", servers("127.0.0.1:1", "[::1]:2"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p lb.Pool
			p.Update(servers("127.0.0.1:9"))
			err := p.Update(tt.servers)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Update error = %v, want %q", err, tt.wantErr)
			}
			// Nothing changed on error.
			if got := names(p.Snapshot()); got != "127.0.0.1:9" {
				t.Fatalf("snapshot after failed Update = %q", got)
			}
		})
	}
}

func TestUpdateKeepsStateByName(t *testing.T) {
	var p lb.Pool
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}}))
	p.SetState("a", lb.StateDown, "connection refused")
	v1 := p.Snapshot().Version
	// a moves to another address: its health stays.
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:3"}, {Name: "b", Addr: "127.0.0.1:2"}, {Name: "c", Addr: "127.0.0.1:4"}}))
	if got := names(p.Snapshot()); got != "b,c" {
		t.Fatalf("pickable = %q, want b,c", got)
	}
	if p.Snapshot().Version <= v1 {
		t.Fatal("version did not increase")
	}
	st := p.Status()
	if st[0].Name != "a" || st[0].State != lb.StateDown || st[0].Reason != "connection refused" || st[0].Addr != "127.0.0.1:3" {
		t.Fatalf("status of a = %+v", st[0])
	}
	// A new server with InitialState down waits for a check.
	q := lb.Pool{InitialState: lb.StateDown}
	must(t, q.Update(servers("127.0.0.1:1")))
	if q.Snapshot().Len() != 0 {
		t.Fatal("server with InitialState down is pickable")
	}
	q.SetState("127.0.0.1:1", lb.StateUp, "")
	if q.Snapshot().Len() != 1 {
		t.Fatal("server up is not pickable")
	}
}

func TestBackupServers(t *testing.T) {
	var p lb.Pool
	must(t, p.Update([]lb.Server{
		{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"},
		{Name: "bk1", Addr: "127.0.0.1:3", Backup: true}, {Name: "bk2", Addr: "127.0.0.1:4", Backup: true},
	}))
	steps := []struct {
		set        string
		state      lb.State
		want       string
		wantBackup bool
	}{
		{"", 0, "a,b", false},
		{"a", lb.StateDown, "b", false},
		{"b", lb.StateGoingDown, "b", false}, // still pickable
		{"b", lb.StateDown, "bk1,bk2", true},
		{"bk1", lb.StateMaintenance, "bk2", true},
		{"a", lb.StateGoingUp, "bk2", true},
		{"a", lb.StateUp, "a", false},
	}
	for _, s := range steps {
		if s.set != "" {
			p.SetState(s.set, s.state, "test")
		}
		snap := p.Snapshot()
		if got := names(snap); got != s.want || snap.Backup != s.wantBackup {
			t.Fatalf("after %s=%v: pickable %q backup=%v, want %q backup=%v", s.set, s.state, got, snap.Backup, s.want, s.wantBackup)
		}
	}
	// Traffic follows.
	p.SetState("a", lb.StateDown, "")
	for range 4 {
		l, err := p.Acquire(context.Background(), lb.PickInfo{})
		must(t, err)
		if l.Server.Name != "bk2" {
			t.Fatalf("picked %s, want bk2", l.Server.Name)
		}
		l.Done(lb.Outcome{})
	}
	p.SetState("bk2", lb.StateDown, "")
	if _, err := p.Acquire(context.Background(), lb.PickInfo{}); !errors.Is(err, lb.ErrNoServer) {
		t.Fatalf("Acquire with nothing up: %v, want ErrNoServer", err)
	}
}

func TestDefaultRotationIsWeighted(t *testing.T) {
	var p lb.Pool
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1", Weight: 1}, {Name: "b", Addr: "127.0.0.1:2", Weight: 3}}))
	counts := map[string]int{}
	for range 400 {
		l, err := p.Acquire(context.Background(), lb.PickInfo{})
		must(t, err)
		counts[l.Server.Name]++
		l.Done(lb.Outcome{})
	}
	if counts["a"] != 100 || counts["b"] != 300 {
		t.Fatalf("counts = %v, want a:100 b:300", counts)
	}
}

func TestAcquireDoesNotAllocate(t *testing.T) {
	var p lb.Pool
	must(t, p.Update(servers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")))
	ctx := context.Background()
	info := lb.PickInfo{}
	allocs := testing.AllocsPerRun(1000, func() {
		l, err := p.Acquire(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		l.Done(lb.Outcome{})
	})
	if allocs != 0 {
		t.Fatalf("Acquire+Done allocates %.1f times, want 0", allocs)
	}
	// MaxConns takes the CAS path, still without allocation.
	must(t, p.Update([]lb.Server{{Addr: "127.0.0.1:1", MaxConns: 10}}))
	allocs = testing.AllocsPerRun(1000, func() {
		l, _ := p.Acquire(ctx, info)
		l.Done(lb.Outcome{})
	})
	if allocs != 0 {
		t.Fatalf("Acquire+Done with MaxConns allocates %.1f times, want 0", allocs)
	}
}

// TestMaxConnsAndQueue runs in a synctest bubble: no socket is involved
// (Acquire never dials), so synctest.Wait proves that a queued Acquire is
// blocked in the queue before a slot frees, and the queue timeout passes on
// the bubble's clock.
func TestMaxConnsAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := lb.Pool{QueueTimeout: 200 * time.Millisecond}
		must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1", MaxConns: 1}, {Name: "b", Addr: "127.0.0.1:2", MaxConns: 1}}))
		ctx := context.Background()
		l1, err := p.Acquire(ctx, lb.PickInfo{})
		must(t, err)
		l2, err := p.Acquire(ctx, lb.PickInfo{})
		must(t, err)
		if l1.Server.Name == l2.Server.Name {
			t.Fatalf("both leases on %s despite MaxConns 1", l1.Server.Name)
		}
		// Both full: a third waits, then times out.
		start := time.Now()
		if _, err := p.Acquire(ctx, lb.PickInfo{}); !errors.Is(err, lb.ErrQueueTimeout) {
			t.Fatalf("third Acquire: %v, want ErrQueueTimeout", err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("queue timeout after %v, want 200ms", d)
		}
		// A queued request gets the slot freed by Done.
		got := make(chan lb.Lease, 1)
		go func() {
			l, err := p.Acquire(ctx, lb.PickInfo{})
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait() // the Acquire above is blocked in the queue
		select {
		case l := <-got:
			t.Fatalf("Acquire returned %s with every server full", l.Server.Name)
		default:
		}
		l1.Done(lb.Outcome{})
		synctest.Wait()
		select {
		case l3 := <-got:
			if l3.Server.Name != l1.Server.Name {
				t.Fatalf("queued request got %s, want the freed %s", l3.Server.Name, l1.Server.Name)
			}
			if d := time.Since(start); d != 200*time.Millisecond {
				t.Fatalf("queued request served after %v of waiting, want at once", d-200*time.Millisecond)
			}
			l3.Done(lb.Outcome{})
		default:
			t.Fatal("queued request not served after a slot freed")
		}
		l2.Done(lb.Outcome{})
		// ctx cancellation ends the wait.
		la, _ := p.Acquire(ctx, lb.PickInfo{})
		lbb, _ := p.Acquire(ctx, lb.PickInfo{})
		cctx, cancel := context.WithCancel(ctx)
		cancelled := make(chan error, 1)
		go func() {
			_, err := p.Acquire(cctx, lb.PickInfo{})
			cancelled <- err
		}()
		synctest.Wait() // blocked in the queue
		cancel()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("cancelled wait ended by a timer after %v", d-200*time.Millisecond)
		}
		la.Done(lb.Outcome{})
		lbb.Done(lb.Outcome{})
		for _, st := range p.Status() {
			if st.Active != 0 {
				t.Fatalf("%s active = %d after all Done", st.Name, st.Active)
			}
		}
	})
}

// pinAll is an Affinity pinning every client to one server name.
type pinAll struct {
	mu     sync.Mutex
	name   string
	pinned []string
}

func (a *pinAll) Lookup(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sv := range s.Servers {
		if sv.Name == a.name {
			return sv, true
		}
	}
	return nil, false
}

func (a *pinAll) Pin(_ lb.PickInfo, s *lb.Server) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.name = s.Name
	a.pinned = append(a.pinned, s.Name)
}

func TestAffinity(t *testing.T) {
	aff := &pinAll{name: "b"}
	p := lb.Pool{Affinity: aff, QueueTimeout: 100 * time.Millisecond}
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2", MaxConns: 1}}))
	ctx := context.Background()
	l, err := p.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	if l.Server.Name != "b" || !l.Sticky {
		t.Fatalf("pinned pick = %s sticky=%v", l.Server.Name, l.Sticky)
	}
	// The pinned server is full: the client waits for it rather than moving.
	if _, err := p.Acquire(ctx, lb.PickInfo{}); !errors.Is(err, lb.ErrQueueTimeout) {
		t.Fatalf("pinned to a full server: %v, want ErrQueueTimeout", err)
	}
	l.Done(lb.Outcome{})
	// The pinned server goes down: balanced normally and re-pinned.
	p.SetState("b", lb.StateDown, "")
	l, err = p.Acquire(ctx, lb.PickInfo{})
	must(t, err)
	if l.Server.Name != "a" || l.Sticky {
		t.Fatalf("after pinned server down: %s sticky=%v", l.Server.Name, l.Sticky)
	}
	l.Done(lb.Outcome{})
	if aff.name != "a" {
		t.Fatalf("not re-pinned: %q", aff.name)
	}
}

// TestDrainWaitsForLastConnection runs in a synctest bubble (no socket is
// involved): synctest.Wait proves Drain is blocked, not merely late.
func TestDrainWaitsForLastConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p lb.Pool
		must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "b", Addr: "127.0.0.1:2"}}))
		ctx := context.Background()
		var held []lb.Lease
		for range 4 {
			l, err := p.Acquire(ctx, lb.PickInfo{})
			must(t, err)
			if l.Server.Name == "a" {
				held = append(held, l)
			} else {
				l.Done(lb.Outcome{})
			}
		}
		if len(held) != 2 {
			t.Fatalf("held %d leases on a", len(held))
		}
		drained := make(chan error, 1)
		go func() { drained <- p.Drain(ctx, "a") }()
		synctest.Wait() // Drain has marked a and waits
		if got := names(p.Snapshot()); got != "b" {
			t.Fatalf("draining server still pickable: %q", got)
		}
		held[0].Done(lb.Outcome{})
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned (%v) with a connection open", err)
		default:
		}
		held[1].Done(lb.Outcome{})
		synctest.Wait()
		select {
		case err := <-drained:
			must(t, err)
		default:
			t.Fatal("Drain did not return after the last connection ended")
		}
		if st := p.Status()[0]; !st.Draining || st.Active != 0 {
			t.Fatalf("status after drain: %+v", st)
		}
		p.Undrain("a")
		if got := names(p.Snapshot()); got != "a,b" {
			t.Fatalf("after Undrain: %q", got)
		}
		// Drain with a deadline.
		l, _ := p.Acquire(ctx, lb.PickInfo{})
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if err := p.Drain(dctx, l.Server.Name); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain past deadline: %v", err)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Fatalf("Drain returned %v after the start, want at its 30ms deadline", d)
		}
		l.Done(lb.Outcome{})
		if err := p.Drain(ctx, "nope"); err == nil {
			t.Fatal("Drain of unknown server succeeded")
		}
	})
}

func TestRemovedServerDrainsThenDisappears(t *testing.T) {
	var p lb.Pool
	must(t, p.Update([]lb.Server{{Name: "a", Addr: "127.0.0.1:1"}}))
	l, err := p.Acquire(context.Background(), lb.PickInfo{})
	must(t, err)
	must(t, p.Update([]lb.Server{{Name: "b", Addr: "127.0.0.1:2"}}))
	st := p.Status()
	if len(st) != 2 || st[1].Name != "a" || !st[1].Removed || st[1].Active != 1 {
		t.Fatalf("status with removed busy server: %+v", st)
	}
	l.Done(lb.Outcome{})
	if st := p.Status(); len(st) != 1 || st[0].Name != "b" {
		t.Fatalf("removed server still listed after its last connection: %+v", st)
	}
}

func TestMembersWatch(t *testing.T) {
	var p lb.Pool
	must(t, p.Update(servers("127.0.0.1:1")))
	var set lb.ServerSet = &p
	m, changed := set.Members()
	if len(m) != 1 {
		t.Fatalf("members = %d", len(m))
	}
	set.SetHealth("127.0.0.1:1", lb.StateDown, "x") // health is not membership
	select {
	case <-changed:
		t.Fatal("membership channel closed on a health change")
	default:
	}
	must(t, p.Update(servers("127.0.0.1:1", "127.0.0.1:2")))
	select {
	case <-changed:
	default:
		t.Fatal("membership channel not closed by Update")
	}
	if set.SetHealth("nope", lb.StateUp, "") {
		t.Fatal("SetHealth of unknown server reported true")
	}
}

// TestDialContextRetriesRefusingServer balances client-side: a server that
// refuses connections is skipped, and the lease lasts until Close.
func TestDialContextRetriesRefusingServer(t *testing.T) {
	testutil.CheckLeaks(t)
	echo := testutil.EchoServer(t)
	var p lb.Pool
	must(t, p.Update([]lb.Server{{Name: "dead", Addr: testutil.ClosedAddr(t)}, {Name: "echo", Addr: echo.Addr}}))
	for range 4 {
		c, err := p.DialContext(context.Background(), "tcp", "ignored:1")
		must(t, err)
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := ioReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo = %q, %v", buf, err)
		}
		if p.Status()[1].Active != 1 {
			t.Fatal("lease not held while the connection is open")
		}
		c.Close()
	}
	st := p.Status()
	if st[0].Failures == 0 || st[1].Active != 0 || st[1].Total != 4 {
		t.Fatalf("status = %+v", st)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestOutcomeFailed(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		o    lb.Outcome
		want bool
	}{
		{lb.Outcome{}, false},
		{lb.Outcome{Err: boom, Connect: true}, true},
		{lb.Outcome{Err: boom}, false},                          // an L4 stream ended badly: either peer
		{lb.Outcome{Err: boom, HTTP: true}, true},               // no response
		{lb.Outcome{Err: boom, HTTP: true, Status: 200}, false}, // the body was cut, not the server's answer
		{lb.Outcome{HTTP: true, Status: 503}, false},            // an answer is not a connection failure
	}
	for _, tt := range tests {
		if got := tt.o.Failed(); got != tt.want {
			t.Errorf("%+v.Failed() = %v, want %v", tt.o, got, tt.want)
		}
	}
}

// TestSnapshotActive checks that Snapshot.Active counts the Pool's leases
// in flight, on the published snapshot and on those derived for one pick,
// and is zero for a Snapshot no Pool published.
func TestSnapshotActive(t *testing.T) {
	var seen int64 // the total the Balancer saw at its last pick
	p := &lb.Pool{Name: "active", Balancer: lb.BalancerFunc(func(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
		seen = s.Active()
		return s.Servers[0], nil
	})}
	if err := p.Update(servers("127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11")); err != nil {
		t.Fatal(err)
	}
	var leases []lb.Lease
	for i := range 3 {
		l, err := p.Acquire(context.Background(), lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
		if got := p.Snapshot().Active(); got != int64(i+1) {
			t.Fatalf("after %d leases, Active %d", i+1, got)
		}
	}
	// A pick that avoids a server runs on a derived snapshot: same total.
	l, err := p.Acquire(context.Background(), lb.PickInfo{Avoid: []*lb.Server{leases[0].Server}})
	if err != nil {
		t.Fatal(err)
	}
	if seen != 3 {
		t.Errorf("derived snapshot: Active %d, want 3", seen)
	}
	l.Done(lb.Outcome{})
	for _, l := range leases {
		l.Done(lb.Outcome{})
	}
	if got := p.Snapshot().Active(); got != 0 {
		t.Errorf("after every Done, Active %d", got)
	}
	if got := (&lb.Snapshot{}).Active(); got != 0 {
		t.Errorf("unpublished snapshot: Active %d", got)
	}
}
