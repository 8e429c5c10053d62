package epoll

import (
	"encoding/binary"
	"os"
	"syscall"
	"unsafe"
)

// ET is EPOLLET, which package syscall declares with the wrong sign.
const ET = 1 << 31

// OneShot is EPOLLONESHOT.
const OneShot = 1 << 30

// Poller is an epoll instance watched by the runtime's poller and an
// eventfd registered in it (see the package documentation). Its methods
// are safe for concurrent use, except Run, which one goroutine at a time
// calls. The zero value is not usable: call New.
type Poller struct {
	// Fd is the epoll descriptor.
	Fd int
	// WakeFd is the eventfd; its events carry Fd = WakeFd and Pad = -1
	// (see IsWake), which no other registration whose data is a descriptor,
	// or a counter below 2^63, carries.
	WakeFd int
	// File is the epoll descriptor as an *os.File, which keeps it open.
	File *os.File
	raw  syscall.RawConn
}

// New makes a Poller: an epoll descriptor (close-on-exec, non-blocking)
// and an eventfd registered in it edge-triggered.
func New() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	ev, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(fd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	evfd := int(ev)
	fail := func(err error) (*Poller, error) {
		syscall.Close(fd)
		syscall.Close(evfd)
		return nil, err
	}
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, evfd,
		&syscall.EpollEvent{Events: syscall.EPOLLIN | ET, Fd: int32(evfd), Pad: wakePad}); err != nil {
		return fail(os.NewSyscallError("epoll_ctl", err))
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return fail(os.NewSyscallError("fcntl", err))
	}
	// Pollable: the runtime's poller reports when events are ready.
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		syscall.Close(evfd)
		return nil, err
	}
	return &Poller{Fd: fd, WakeFd: evfd, File: f, raw: raw}, nil
}

// Run calls cycle each time the epoll descriptor may have events ready,
// the first time at once, until cycle returns true; it is one
// RawConn.Read call (see the package documentation). Run returns nil
// then, or the error of the wait itself, which does not happen while the
// descriptor stays open. The argument of cycle is meaningless.
func (p *Poller) Run(cycle func(uintptr) bool) error {
	return p.raw.Read(cycle)
}

// Wait harvests the ready events into events without blocking and returns
// their count. EINTR is returned as is.
func Wait(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Ctl is epoll_ctl(2) on p: op (syscall.EPOLL_CTL_ADD, _MOD, _DEL) for fd,
// with events and the 64 bits of data the events will carry (in the Fd
// and Pad fields of syscall.EpollEvent).
func (p *Poller) Ctl(op, fd int, events uint32, fdData, padData int32) error {
	ev := syscall.EpollEvent{Events: events, Fd: fdData, Pad: padData}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(p.Fd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// Wake makes the eventfd readable, which makes the loop cycle. It is one
// write(2).
func (p *Poller) Wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p.WakeFd), uintptr(unsafe.Pointer(&one[0])), 8)
}

// wakePad is the Pad of the eventfd's events: the upper half of the 64
// bits of data, which registrations that number their watches from 1 (the
// close watcher of internal/h1) leave at 0. With 0 here, the watch whose
// number is WakeFd would have its events taken for wake-ups.
const wakePad = -1

// IsWake reports whether ev is the eventfd's event.
func (p *Poller) IsWake(ev *syscall.EpollEvent) bool {
	return int(ev.Fd) == p.WakeFd && ev.Pad == wakePad
}

// ResetWake reads the eventfd's counter back to zero, so that the next
// Wake raises a new edge.
func (p *Poller) ResetWake() {
	var b [8]byte
	syscall.RawSyscall(syscall.SYS_READ, uintptr(p.WakeFd), uintptr(unsafe.Pointer(&b[0])), 8)
}
