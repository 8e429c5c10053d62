package park

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkParkWake is the round trip of a keep-alive connection between
// requests: Park, the peer writes a byte, ready runs, the byte is read.
// Park allocates what (*net.TCPConn).SyscallConn does; ParkRaw, given the
// connection's RawConn once, nothing.
func BenchmarkParkWake(b *testing.B) {
	b.Run("Park", func(b *testing.B) { benchParkWake(b, false) })
	b.Run("ParkRaw", func(b *testing.B) { benchParkWake(b, true) })
	b.Run("BlockedRead", benchBlockedRead)
}

// benchBlockedRead is the same round trip the way net/http waits, for
// comparison: a goroutine blocked in a read, which the runtime's poller
// wakes.
func benchBlockedRead(b *testing.B) {
	c, peer := pair(b, listen(b))
	next := make(chan struct{})
	got := make(chan error)
	go func() {
		buf := make([]byte, 1)
		for range next {
			_, err := c.Read(buf)
			got <- err
		}
	}()
	defer close(next)
	buf := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		next <- struct{}{}
		if _, err := peer.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
	}
}

func benchParkWake(b *testing.B, raw bool) {
	p := New()
	c, peer := pair(b, listen(b))
	rc, err := c.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	woke := make(chan error, 1)
	ready := func(err error) { woke <- err }
	buf := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if raw {
			_, err = p.ParkRaw(rc, time.Time{}, ready)
		} else {
			_, err = p.Park(c, time.Time{}, ready)
		}
		if err != nil {
			b.Fatal(err)
		}
		if _, err := peer.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := <-woke; err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParkCancel parks a connection with a deadline and cancels it,
// the path of a connection closed at shutdown.
func BenchmarkParkCancel(b *testing.B) {
	p := New()
	c, _ := pair(b, listen(b))
	// Another connection stays parked so that the loops keep running.
	c2, _ := pair(b, listen(b))
	t2, err := p.Park(c2, time.Time{}, func(error) {})
	if err != nil {
		b.Fatal(err)
	}
	defer t2.Cancel()
	rc, err := c.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	ready := func(error) { b.Error("ready called") }
	b.ReportAllocs()
	for b.Loop() {
		t, err := p.ParkRaw(rc, time.Now().Add(time.Minute), ready)
		if err != nil {
			b.Fatal(err)
		}
		if !t.Cancel() {
			b.Fatal("Cancel returned false")
		}
	}
}

// parkedConns is the number of connections BenchmarkParkedMemory holds.
const parkedConns = 10000

// BenchmarkParkedMemory measures what an idle connection costs while it
// waits for its next request: parked, and, for comparison, as net/http
// holds it (a goroutine blocked in a read through a 4 KiB bufio.Reader,
// with a 4 KiB bufio.Writer beside it). It reports heap and stack bytes
// per connection (runtime.MemStats after a GC; the kernel's socket and
// epoll memory is not counted) and the goroutines added per connection,
// over 10,000 loopback connections whose peers live in a child process
// (the test binary again, in TestPeerHolder), so that this process needs
// only 10,000 descriptors.
func BenchmarkParkedMemory(b *testing.B) {
	cs := holdPeers(b, parkedConns)
	// The caller's side (its Tickets, its ready function) is made before
	// the measure: only the Parker's cost is counted.
	ts := make([]Ticket, len(cs))
	ready := func(error) {}
	for b.Loop() {
		parked, gPark := measureIdle(b, cs, func() func() {
			p := New()
			for i, c := range cs {
				t, err := p.Park(c, time.Now().Add(time.Minute), ready)
				if err != nil {
					b.Fatal(err)
				}
				ts[i] = t
			}
			if p.Len() != len(cs) {
				b.Fatalf("Len = %d, want %d", p.Len(), len(cs))
			}
			return func() {
				for _, t := range ts {
					if !t.Cancel() {
						b.Fatal("Cancel returned false")
					}
				}
			}
		})
		blocked, gBlock := measureIdle(b, cs, func() func() {
			done := make(chan struct{}, len(cs))
			for _, c := range cs {
				go func() {
					br := bufio.NewReaderSize(c, 4096)
					bw := bufio.NewWriterSize(c, 4096)
					br.ReadByte()
					bw.Flush()
					done <- struct{}{}
				}()
			}
			return func() {
				for _, c := range cs {
					c.SetReadDeadline(time.Unix(1, 0))
				}
				for range cs {
					<-done
				}
				for _, c := range cs {
					c.SetReadDeadline(time.Time{})
				}
			}
		})
		b.ReportMetric(parked, "B/parked")
		b.ReportMetric(gPark, "goroutines/parked")
		b.ReportMetric(blocked, "B/blocked-reader")
		b.ReportMetric(gBlock, "goroutines/blocked-reader")
	}
}

// measureIdle calls hold, and returns the heap and stack bytes and the
// goroutines that hold added, per connection of cs; it then calls the
// function hold returned.
func measureIdle(b *testing.B, cs []*net.TCPConn, hold func() func()) (bytes, goroutines float64) {
	before, g0 := memNow()
	release := hold()
	after, g1 := memNow()
	release()
	n := float64(len(cs))
	return float64(int64(after)-int64(before)) / n, float64(g1-g0) / n
}

// memNow returns the bytes of heap and goroutine stacks in use after a GC,
// and the goroutine count.
func memNow() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse, runtime.NumGoroutine()
}

// holdPeers returns the accepted ends of n loopback connections whose
// dialing ends a child process holds until the benchmark ends.
func holdPeers(b *testing.B, n int) []*net.TCPConn {
	ln := listen(b)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerHolder$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PARK_PEER_ADDR="+ln.Addr().String(), "PARK_PEER_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	cs := make([]*net.TCPConn, 0, n)
	b.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute))
	for range n {
		a, err := ln.Accept()
		if err != nil {
			b.Fatalf("accepting the child's connections: %v", err)
		}
		cs = append(cs, a.(*net.TCPConn))
	}
	return cs
}

// TestPeerHolder is the child process of holdPeers: it dials
// $PARK_PEER_N connections to $PARK_PEER_ADDR and holds them until its
// standard input closes (at most a minute). Without the variables it does
// nothing.
func TestPeerHolder(t *testing.T) {
	addr := os.Getenv("PARK_PEER_ADDR")
	if addr == "" {
		t.Skip("the child process of BenchmarkParkedMemory")
	}
	n, err := strconv.Atoi(os.Getenv("PARK_PEER_N"))
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: 10 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
}
