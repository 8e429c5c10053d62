package redisrate_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/internal/testservers"
	"github.com/lbkit/lbkit/lb/redisrate"
)

// BenchmarkAllow measures decisions: "redis" runs the script for each
// (a client under its rate), "refused" answers a client Redis refused
// from the local table, without a round trip.
func BenchmarkAllow(b *testing.B) {
	rs := testservers.Redis(b)
	ctx := context.Background()
	b.Run("redis", func(b *testing.B) {
		rl := &redisrate.Limiter{Client: newClient(b, rs.Addr), Prefix: "bench:", Rate: 1e9, Burst: 1e9}
		key := netip.MustParseAddr("198.51.100.1")
		b.ReportAllocs()
		for b.Loop() {
			if ok, _ := rl.Allow(ctx, key); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("refused", func(b *testing.B) {
		rl := &redisrate.Limiter{Client: newClient(b, rs.Addr), Prefix: "bench2:", Rate: 0.001, Burst: 1}
		key := netip.MustParseAddr("198.51.100.2")
		rl.Allow(ctx, key)
		if ok, _ := rl.Allow(ctx, key); ok {
			b.Fatal("second request allowed")
		}
		b.ReportAllocs()
		for b.Loop() {
			if ok, _ := rl.Allow(ctx, key); ok {
				b.Fatal("allowed")
			}
		}
	})
}
