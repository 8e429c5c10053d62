package redisutil

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestContextTimeouts(t *testing.T) {
	off := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	on := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer off.Close()
	defer on.Close()
	if ContextTimeouts(off) || !ContextTimeouts(on) {
		t.Errorf("ContextTimeouts: without %v, with %v", ContextTimeouts(off), ContextTimeouts(on))
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	if !b.Available(time.Now()) {
		t.Fatal("the zero Backoff is not available")
	}
	if !b.Failed(time.Hour) {
		t.Error("the first failure did not begin the pause")
	}
	if b.Failed(time.Hour) {
		t.Error("a failure during the pause began another")
	}
	if b.Available(time.Now()) || !b.Available(time.Now().Add(2*time.Hour)) {
		t.Error("Available ignores the pause")
	}
}
