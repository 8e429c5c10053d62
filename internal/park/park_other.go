//go:build !linux

package park

import (
	"syscall"
	"time"
)

// loop is the Linux event loop's; other systems have none.
type loop struct{ count atomicZero }

type atomicZero struct{}

func (atomicZero) Load() int64 { return 0 }

// Park returns ErrUnsupported on this system: the caller waits for the
// next bytes with a blocking read on its own goroutine.
func (p *Parker) Park(c syscall.Conn, deadline time.Time, ready func(error)) (Ticket, error) {
	return Ticket{}, ErrUnsupported
}

// Cancel reports false: nothing is ever parked on this system.
func (t Ticket) Cancel() bool { return false }

// ParkRaw returns ErrUnsupported on this system, like Park.
func (p *Parker) ParkRaw(rc syscall.RawConn, deadline time.Time, ready func(error)) (Ticket, error) {
	return Ticket{}, ErrUnsupported
}
