package park

import (
	"bufio"
	"net"
	"runtime"
	"syscall"
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
// epoll memory is not counted) and the goroutines added per connection.
// Each b.N iteration measures 10,000 loopback connections afresh; it needs
// 20,000 descriptors and raises RLIMIT_NOFILE when it can.
func BenchmarkParkedMemory(b *testing.B) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if need := uint64(2*parkedConns + 1000); lim.Cur < need {
		lim.Cur = need
		lim.Max = max(lim.Max, need)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Skipf("needs %d descriptors: %v", need, err)
		}
	}
	for b.Loop() {
		parked, gPark := measureIdle(b, func(cs []*net.TCPConn) func() {
			p := New()
			ready := func(error) {}
			ts := make([]Ticket, len(cs))
			for i, c := range cs {
				t, err := p.Park(c, time.Now().Add(time.Minute), ready)
				if err != nil {
					b.Fatal(err)
				}
				ts[i] = t
			}
			return func() {
				for _, t := range ts {
					if !t.Cancel() {
						b.Fatal("Cancel returned false")
					}
				}
			}
		})
		blocked, gBlock := measureIdle(b, func(cs []*net.TCPConn) func() {
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
			}
		})
		b.ReportMetric(parked, "B/parked")
		b.ReportMetric(gPark, "goroutines/parked")
		b.ReportMetric(blocked, "B/blocked-reader")
		b.ReportMetric(gBlock, "goroutines/blocked-reader")
	}
}

// measureIdle opens parkedConns loopback connections, calls hold on the
// accepted ends, and returns the heap and stack bytes and the goroutines
// that hold added, per connection; it then calls the function hold
// returned and closes the connections.
func measureIdle(b *testing.B, hold func([]*net.TCPConn) func()) (bytes, goroutines float64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cs := make([]*net.TCPConn, 0, parkedConns)
	ds := make([]net.Conn, 0, parkedConns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
		for _, d := range ds {
			d.Close()
		}
	}()
	for range parkedConns {
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
		a, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, a.(*net.TCPConn))
	}
	before, g0 := memNow()
	release := hold(cs)
	after, g1 := memNow()
	release()
	n := float64(parkedConns)
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
