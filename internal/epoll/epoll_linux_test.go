package epoll

import (
	"syscall"
	"testing"
	"time"
)

// TestWakeRunsCycle: Run calls the cycle at once, then again after Wake,
// and the harvest reports the eventfd, until the cycle returns true.
func TestWakeRunsCycle(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	events := make([]syscall.EpollEvent, 8)
	cycles := make(chan int, 4)
	done := make(chan error, 1)
	woken := 0
	go func() {
		calls := 0
		done <- p.Run(func(uintptr) bool {
			calls++
			n, err := Wait(p.Fd, events)
			if err != nil {
				t.Errorf("Wait: %v", err)
				return true
			}
			for i := range events[:n] {
				if p.IsWake(&events[i]) {
					woken++
					p.ResetWake()
				}
			}
			cycles <- calls
			return woken == 2
		})
	}()
	for want := 1; want <= 3; want++ {
		select {
		case got := <-cycles:
			if got != want {
				t.Fatalf("cycle %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("cycle %d did not come", want)
		}
		if want < 3 {
			p.Wake()
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the cycle returned true")
	}
}

// TestCtl registers a socket's descriptor with 64 bits of data and gets
// them back in its event.
func TestCtl(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if err := p.Ctl(syscall.EPOLL_CTL_ADD, fds[0], syscall.EPOLLIN|OneShot, 7, 9); err != nil {
		t.Fatal(err)
	}
	if err := p.Ctl(syscall.EPOLL_CTL_ADD, fds[0], syscall.EPOLLIN, 7, 9); err != syscall.EEXIST {
		t.Fatalf("second ADD: %v, want EEXIST", err)
	}
	syscall.Write(fds[1], []byte("x"))
	events := make([]syscall.EpollEvent, 4)
	n, err := Wait(p.Fd, events)
	if err != nil || n != 1 || events[0].Fd != 7 || events[0].Pad != 9 || p.IsWake(&events[0]) {
		t.Fatalf("Wait: %d events %+v, %v; want one with data 7, 9", n, events[:n], err)
	}
	if err := p.Ctl(syscall.EPOLL_CTL_DEL, fds[0], 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := Wait(p.Fd, events); n != 0 {
		t.Fatalf("%d events after DEL", n)
	}
}

// TestWakeNotConfused registers a pipe whose events carry the number of
// the eventfd as their data, as a registration that numbers its watches
// from 1 does when it reaches that number: its events are not wake-ups,
// and the eventfd's are.
func TestWakeNotConfused(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.File.Close()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if err := p.Ctl(syscall.EPOLL_CTL_ADD, fds[0], syscall.EPOLLIN|ET, int32(p.WakeFd), 0); err != nil {
		t.Fatal(err)
	}
	syscall.Write(fds[1], []byte{1})
	events := make([]syscall.EpollEvent, 4)
	n, err := Wait(p.Fd, events)
	if err != nil || n != 1 {
		t.Fatalf("Wait: %d events, %v; want the pipe's", n, err)
	}
	if p.IsWake(&events[0]) {
		t.Fatal("the pipe's event, whose data is the eventfd's number, was taken for a wake-up")
	}
	p.Wake()
	if n, err = Wait(p.Fd, events); err != nil || n != 1 || !p.IsWake(&events[0]) {
		t.Fatalf("after Wake: %d events, %v; want the wake-up", n, err)
	}
}
