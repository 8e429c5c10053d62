package pipe_test

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// proxyAllocs returns the average number of allocations of a Proxy call
// that copies size bytes client to server (and nothing back), excluding
// the peers, which allocate nothing while they copy.
func proxyAllocs(t *testing.T, m mode, size int) float64 {
	const runs = 4
	type run struct {
		pc, ps      net.Conn
		start, done chan struct{}
	}
	wbuf := make([]byte, 256<<10)
	sets := make([]*run, runs+1) // AllocsPerRun makes one warm-up call
	for i := range sets {
		cli, pc := tcpPair(t)
		ps, srv := tcpPair(t)
		t.Cleanup(func() {
			cli.Close()
			srv.Close()
		})
		r := &run{pc: pc, ps: ps, start: make(chan struct{}), done: make(chan struct{})}
		if m == modeBuffered {
			r.pc, r.ps = plainConn{pc}, plainConn{ps}
		}
		rbuf := make([]byte, 256<<10)
		go func() {
			<-r.start
			for left := size; left > 0; {
				n, err := cli.Write(wbuf[:min(left, len(wbuf))])
				if err != nil {
					return
				}
				left -= n
			}
			cli.CloseWrite()
		}()
		go func() {
			defer close(r.done)
			<-r.start
			for {
				if _, err := srv.Read(rbuf); err != nil {
					break
				}
			}
			srv.CloseWrite()
		}()
		sets[i] = r
	}
	i := 0
	// Counting the bytes must not allocate either.
	var upCount, downCount atomic.Int64
	opt := pipe.Options{Idle: time.Minute}
	opt.Counters[0] = pipe.Counters{&upCount}
	opt.Counters[1] = pipe.Counters{&downCount}
	return testing.AllocsPerRun(runs, func() {
		r := sets[i]
		i++
		upCount.Store(0)
		close(r.start)
		up, _, err := pipe.Proxy(context.Background(), r.pc, r.ps, opt)
		<-r.done
		if err != nil || up != int64(size) || upCount.Load() != up {
			t.Errorf("Proxy = %d, %v; counted %d", up, err, upCount.Load())
		}
	})
}

// TestCopyDoesNotAllocatePerChunk checks that the cost of a Proxy call in
// allocations does not grow with the bytes copied: the splice path goes
// through (*net.TCPConn).ReadFrom without a per-chunk allocation (an
// allocated 32 KiB buffer per call would show a fallback to a generic
// copy), and the buffered path reuses its pooled buffer.
func TestCopyDoesNotAllocatePerChunk(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, m := range []mode{modeLoop, modeSplice, modeBuffered} {
		t.Run(string(m), func(t *testing.T) {
			if m != modeBuffered && runtime.GOOS != "linux" {
				t.Skip("splice is Linux only")
			}
			small := proxyAllocs(t, m, 1<<20)
			large := proxyAllocs(t, m, 16<<20)
			t.Logf("allocations per Proxy call: %.1f for 1 MiB, %.1f for 16 MiB", small, large)
			// 15 MiB more is 120 splice chunks or 480 buffered reads.
			if large > small+3 {
				t.Fatalf("allocations grow with the size copied: %.1f for 1 MiB, %.1f for 16 MiB", small, large)
			}
		})
	}
}
