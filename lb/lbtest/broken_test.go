package lbtest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/lbtest"
)

// brokenEnv names, in the environment of a child process of this test
// binary, the broken balancer that TestBrokenBalancerChild runs Run on.
const brokenEnv = "LBTEST_BROKEN_BALANCER"

// outsider returns a server of another pool: a real, configured server,
// but not one of the snapshot it was given.
type outsider struct{ s *lb.Server }

func newOutsider() lb.Balancer {
	var p lb.Pool
	if err := p.Update([]lb.Server{{Name: "s0", Addr: "127.0.0.1:10000"}}); err != nil {
		panic(err)
	}
	return &outsider{s: p.Snapshot().Servers[0]}
}

func (o *outsider) Pick(*lb.Snapshot, lb.PickInfo) (*lb.Server, error) { return o.s, nil }

// stale keeps the servers of the first snapshot it sees and picks among
// them ever after.
type stale struct {
	once    sync.Once
	servers []*lb.Server
	n       atomic.Uint64
}

func (b *stale) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	b.once.Do(func() { b.servers = s.Servers })
	return b.servers[b.n.Add(1)%uint64(len(b.servers))], nil
}

// allocating rotates correctly but allocates on every pick.
type allocating struct {
	n    atomic.Uint64
	sink atomic.Pointer[[]byte]
}

func (b *allocating) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	buf := make([]byte, 64)
	b.sink.Store(&buf)
	return s.Servers[b.n.Add(1)%uint64(len(s.Servers))], nil
}

// brokenBalancers are balancers that break the contract Run checks, with
// the subtests of Run that must report each (others may too: Parallel
// catches a stale balancer only if a state change lands between its picks);
// "rotate" is a correct balancer that must pass.
var brokenBalancers = map[string]struct {
	new   func() lb.Balancer
	fails []string
}{
	"rotate": {func() lb.Balancer { return &rotate{} }, nil},
	"outsider": {newOutsider,
		[]string{"AcquireDone", "Members", "OneServer", "Parallel", "Removed"}},
	"nil": {func() lb.Balancer {
		return lb.BalancerFunc(func(*lb.Snapshot, lb.PickInfo) (*lb.Server, error) { return nil, nil })
	}, []string{"AcquireDone", "Members", "OneServer", "Parallel", "Removed"}},
	"error": {func() lb.Balancer {
		return lb.BalancerFunc(func(*lb.Snapshot, lb.PickInfo) (*lb.Server, error) {
			return nil, errors.New("broken")
		})
	}, []string{"AcquireDone", "Members", "OneServer", "Parallel", "Removed", "ZeroAllocs"}},
	"stale":      {func() lb.Balancer { return &stale{} }, []string{"AcquireDone", "Members", "Removed"}},
	"allocating": {func() lb.Balancer { return &allocating{} }, []string{"ZeroAllocs"}},
}

// TestBrokenBalancerChild runs Run on the balancer named by brokenEnv; it
// runs only in the child processes of TestRunFailsBrokenBalancers.
func TestBrokenBalancerChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs in a child process of TestRunFailsBrokenBalancers")
	}
	lbtest.Run(t, brokenBalancers[name].new)
}

// failedRe matches the subtests of Run that failed in a child's -test.v
// output.
var failedRe = regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenBalancerChild/(\w+)`)

// TestRunFailsBrokenBalancers shows that Run fails a Balancer that breaks
// its contract, in the subtest of the property broken: each balancer runs
// through Run on a real *testing.T, in a child process of this test
// binary, whose failures are read from its output.
func TestRunFailsBrokenBalancers(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range brokenBalancers {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^TestBrokenBalancerChild$", "-test.v", "-test.count=1", "-test.timeout=90s")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var failed []string
			for _, m := range failedRe.FindAllStringSubmatch(string(out), -1) {
				failed = append(failed, m[1])
			}
			if len(tc.fails) == 0 && len(failed) > 0 {
				t.Fatalf("Run failed subtests %q of a correct balancer; output:\n%s", failed, out)
			}
			for _, want := range tc.fails {
				if !slices.Contains(failed, want) {
					t.Errorf("Run did not fail subtest %s (failed %q); output:\n%s", want, failed, out)
				}
			}
			var exit *exec.ExitError
			switch {
			case len(tc.fails) == 0 && err != nil:
				t.Fatalf("Run on a correct balancer: %v; output:\n%s", err, out)
			case len(tc.fails) > 0 && !errors.As(err, &exit):
				t.Fatalf("Run on a broken balancer: child ended with %v, want a failed test; output:\n%s", err, out)
			}
		})
	}
}
