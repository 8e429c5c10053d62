package pipe_test

import (
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/pipe"
)

// BenchmarkProxy measures the throughput of one direction (client to
// server) through a running Proxy, 1 MiB per operation. The tls case
// includes the peers' TLS work on both sides.
func BenchmarkProxy(b *testing.B) {
	const chunk = 1 << 20
	for _, m := range modes {
		b.Run(string(m), func(b *testing.B) {
			e := start(b, m, pipe.Options{Idle: time.Minute})
			buf := make([]byte, chunk)
			done := make(chan error, 1)
			total := int64(b.N) * chunk
			go func() {
				rb := make([]byte, 256<<10)
				for left := total; left > 0; {
					n, err := e.server.Read(rb[:min(left, int64(len(rb)))])
					if err != nil {
						done <- err
						return
					}
					left -= int64(n)
				}
				done <- nil
			}()
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := e.client.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
