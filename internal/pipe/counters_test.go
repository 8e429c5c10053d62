package pipe_test

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
	"github.com/lbkit/lbkit/internal/testutil"
)

// TestCountersAdvanceWhileOpen checks, on every copy path, that the
// counters of Options see the bytes of each direction while the copy runs,
// and that they end equal to what Proxy returns. The splice path makes its
// progress visible per chunk of 128 KiB (or at the idle timeout's probes):
// there the counters may lag by up to a chunk.
func TestCountersAdvanceWhileOpen(t *testing.T) {
	const upSize, downSize = 300 << 10, 500 << 10
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			testutil.CheckLeaks(t)
			var slack int64
			if m == modeSplice {
				slack = 128 << 10
			}
			var up, down, upTotal atomic.Int64
			opt := pipe.Options{Idle: 20 * time.Second, ClientPending: []byte("hi")}
			opt.Counters[0] = pipe.Counters{&up, nil, &upTotal}
			opt.Counters[1] = pipe.Counters{&down}
			e := start(t, m, opt)
			deadline(e, 20*time.Second)
			buf := make([]byte, downSize)
			if _, err := io.ReadFull(e.server, buf[:2]); err != nil { // the pending bytes
				t.Fatal(err)
			}
			for round := int64(1); round <= 3; round++ {
				wantUp, wantDown := 2+round*upSize, round*downSize
				errc := make(chan error, 1)
				go func() {
					_, err := e.client.Write(make([]byte, upSize))
					errc <- err
				}()
				if _, err := io.ReadFull(e.server, buf[:upSize]); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				testutil.Eventually(t, "up counters", func() bool {
					return up.Load() >= wantUp-slack && up.Load() <= wantUp && upTotal.Load() == up.Load()
				})
				go func() {
					_, err := e.server.Write(make([]byte, downSize))
					errc <- err
				}()
				if _, err := io.ReadFull(e.client, buf[:downSize]); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				testutil.Eventually(t, "down counter", func() bool {
					return down.Load() >= wantDown-slack && down.Load() <= wantDown
				})
			}
			if _, ok := e.ended(); ok {
				t.Fatal("Proxy ended early")
			}
			closeWrite(t, e.client)
			closeWrite(t, e.server)
			r := e.wait(t, 5*time.Second)
			if r.up != 2+3*upSize || r.up != up.Load() || r.down != down.Load() {
				t.Fatalf("Proxy = %d up, %d down; counters %d, %d", r.up, r.down, up.Load(), down.Load())
			}
		})
	}
}
