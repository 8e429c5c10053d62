package lb

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
)

// tcpPair returns the accepted and dialed ends of a loopback TCP
// connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	client, server = testutil.TCPPair(t)
	return server, client
}

// countConn counts the writes that reach the connection.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// pattern returns n bytes of a sequence that depends on the offset, so that
// a byte lost, repeated or moved is seen.
func pattern(off, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		x := off + i
		p[i] = byte(x ^ x>>8 ^ x>>16)
	}
	return p
}

// TestH2WriterBatches writes chunks of every size class (frame headers,
// small frames, full 16 KiB DATA frames, and writes past h2WriteMax, which
// go through) and checks the peer reads exactly those bytes in order, that
// Close writes what is pending before closing, and that the flush
// goroutine has ended when Close returns.
func TestH2WriterBatches(t *testing.T) {
	server, client := tcpPair(t)
	cc := &countConn{Conn: server}
	w := newH2Writer(cc, 5*time.Second)
	sizes := []int{9, 1, 120, 4096, 16384 + 9, 3, h2WriteMax + 1, 700, h2WriteMax, 2 * h2WriteMax}
	const total = 8 << 20
	got := make(chan []byte, 1)
	go func() {
		client.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := io.ReadAll(client)
		if err != nil {
			t.Errorf("reading: %v", err)
		}
		got <- b
	}()
	calls := 0
	for off := 0; off < total; calls++ {
		n := min(sizes[calls%len(sizes)], total-off)
		p := pattern(off, n)
		if m, err := w.Write(p); m != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
		clear(p) // the writer must have copied it
		off += n
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w.mu.Lock()
	flushing := w.flushing
	w.mu.Unlock()
	if flushing {
		t.Error("the flush goroutine runs after Close returned")
	}
	b := <-got
	if len(b) != total {
		t.Fatalf("peer read %d bytes, want %d", len(b), total)
	}
	if !bytes.Equal(b, pattern(0, total)) {
		i := 0
		for b[i] == pattern(i, 1)[0] {
			i++
		}
		t.Fatalf("bytes differ from offset %d", i)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	t.Logf("%d Writes, %d writes to the connection", calls, cc.writes.Load())
}

// TestH2WriterError checks that a failed write reaches the next Write and
// closes the connection.
func TestH2WriterError(t *testing.T) {
	server, client := tcpPair(t)
	w := newH2Writer(server, 0)
	client.SetLinger(0)
	client.Close() // a reset: writes to it fail
	p := make([]byte, 1000)
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 100000 && err == nil && time.Now().Before(deadline); i++ {
		_, err = w.Write(p)
		if err == nil {
			time.Sleep(time.Millisecond)
		}
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	if _, rerr := server.Read(make([]byte, 1)); !errors.Is(rerr, net.ErrClosed) {
		t.Errorf("read after the failed write: %v, want net.ErrClosed (the writer closes the connection)", rerr)
	}
	if cerr := w.Close(); cerr != nil {
		t.Errorf("Close after a failed write: %v", cerr)
	}
}

// TestH2WriterCloseBound checks that Close returns within its bound when
// the peer reads nothing and no byte timeout is set, and that a Write
// waiting for room then fails.
func TestH2WriterCloseBound(t *testing.T) {
	server, client := tcpPair(t)
	client.SetReadBuffer(4 << 10)
	server.SetWriteBuffer(4 << 10)
	w := newH2Writer(server, 0)
	wrote := make(chan error, 1)
	go func() {
		p := make([]byte, 16<<10)
		for range 64 << 10 { // 1 GiB at most: the buffers fill long before
			if _, err := w.Write(p); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	// Wait until a Write waits for room: the flush is stuck.
	for i := 0; ; i++ {
		w.mu.Lock()
		full := w.buf != nil && len(*w.buf) > h2WriteMax-16<<10
		w.mu.Unlock()
		if full {
			break
		}
		if i == 500 {
			t.Fatal("the writer's buffer never filled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	w.Close()
	if d := time.Since(start); d < h2CloseFlush/2 || d > 3*h2CloseFlush {
		t.Errorf("Close took %v, want about %v", d, h2CloseFlush)
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Error("Writes to a peer that reads nothing all succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Write still waits after Close")
	}
}
