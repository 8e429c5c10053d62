// Package epoll is an epoll instance that the Go runtime's own network
// poller watches, for the event loops of internal/pipe and internal/park.
//
// A Poller is an epoll descriptor, non-blocking, wrapped in an *os.File so
// that the runtime's poller reports when events are ready on it, plus an
// eventfd registered in it that wakes the loop on demand. A loop's
// goroutine makes one RawConn.Read call (Run) for its whole life: the
// callback harvests the ready events without blocking (Wait) and serves
// them, and returns false to wait for the next ones. A goroutine waiting
// for events is thus a parked goroutine, not a thread blocked in
// epoll_wait that the scheduler would have to replace.
//
// Why one call: the runtime forgets a readiness edge that came before a
// RawConn.Read call began, so a loop that returned from Read and called it
// again could miss events. Within one call an edge is never lost, provided
// every harvest that does not fill the event buffer has emptied the ready
// list (true of edge-triggered and one-shot registrations) before the
// callback returns false.
//
// The epoll and eventfd descriptors stay open for the life of the process:
// Pollers are few (one per loop) and made once.
//
// The system calls here (epoll_pwait with a zero timeout, epoll_ctl, the
// eventfd write and read) are raw: they do not block, so they skip the
// scheduler's system-call bookkeeping.
//
// The package exists on Linux only.
package epoll
