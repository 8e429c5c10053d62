package tlsmode

import (
	"context"
	"testing"
	"time"
)

func TestTicketKeysDifferPerRotation(t *testing.T) {
	k := &TicketKeys{}
	seen := map[[32]byte]bool{}
	for range 8 {
		k.Rotate()
		if seen[k.keys[0].key] {
			t.Fatal("a rotation repeated a key")
		}
		seen[k.keys[0].key] = true
	}
}

func TestTicketKeysRun(t *testing.T) {
	k := &TicketKeys{Rotation: 10 * time.Millisecond}
	k.Rotate()
	first := k.keys[0].key
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		k.mu.Lock()
		cur := k.keys[0].key
		k.mu.Unlock()
		if cur != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not rotate")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
