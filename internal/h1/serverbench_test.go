package h1

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// heapNow returns the live heap after two collections.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkServerIdleMemory measures the heap that idle keep-alive
// connections cost, client and server side in this process: n clients
// each make one request and stay connected. "parked" serves them with a
// Server (parked after a 1 ms hot window); "bare" only accepts the
// connections and keeps them, the least any server holds. The difference
// is what the engine keeps per idle connection. Goroutines per connection
// are reported too.
func BenchmarkServerIdleMemory(b *testing.B) {
	const n = 2000
	for _, mode := range []string{"bare", "parked"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				var s *Server
				var held []net.Conn
				accepted := make(chan struct{})
				if mode == "parked" {
					s = &Server{Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						io.WriteString(w, "ok")
					})}, HotWindow: time.Millisecond}
					go s.Serve(ln)
				} else {
					go func() {
						defer close(accepted)
						for range n {
							c, err := ln.Accept()
							if err != nil {
								return
							}
							held = append(held, c)
						}
					}()
				}
				g0 := runtime.NumGoroutine()
				h0 := heapNow()
				clients := make([]net.Conn, 0, n)
				buf := make([]byte, 512)
				for range n {
					c, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						b.Fatal(err)
					}
					clients = append(clients, c)
					if mode == "parked" {
						c.SetDeadline(time.Now().Add(10 * time.Second))
						io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
						if _, err := c.Read(buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				if mode == "parked" {
					for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
						if _, p := s.Conns(); p == n {
							break
						}
					}
				} else {
					<-accepted
				}
				h1 := heapNow()
				g1 := runtime.NumGoroutine()
				b.ReportMetric(float64(int64(h1)-int64(h0))/n, "heap-B/conn")
				b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
				for _, c := range clients {
					c.Close()
				}
				for _, c := range held {
					c.Close()
				}
				if s != nil {
					s.Close()
				}
				ln.Close()
			}
		})
	}
}
