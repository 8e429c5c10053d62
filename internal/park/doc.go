// Package park holds idle client connections without a goroutine, a stack
// or a buffer each: an HTTP/1.1 keep-alive connection waiting for its next
// request is parked, and a goroutine is started for it again only when its
// socket becomes readable.
//
// # Contract
//
// A Parker watches parked connections on GOMAXPROCS (or fewer) epoll
// loops. Park registers a connection and returns at once. Exactly one of
// these happens later, each at most once, each calling the ready function
// on a new goroutine (never on Park's caller's, never while a lock of the
// Parker is held; it may run before Park has returned):
//
//   - the socket becomes readable or hung up (data, FIN, RST, error):
//     ready(nil);
//   - the deadline passes first (zero: none): ready(ErrTimeout);
//   - the Ticket's Cancel wins: ready is not called at all (Cancel
//     returned true).
//
// Park does not read from, write to or close the connection, which stays
// the caller's: the caller must not use it until ready runs or Cancel
// returned true. A registration must never outlive its descriptor: a
// caller that closes a parked connection (at shutdown, say) calls Cancel
// first, and closes it only if Cancel returned true, or in ready
// otherwise. Closing a parked connection without Cancel leaves a
// registration that never wakes (the kernel drops the closed descriptor
// from the epoll set) until its deadline, and a later Cancel of it could
// remove the registration of another connection that reused the
// descriptor number. Park only watches the socket: bytes already read
// into a buffer above it (bufio, TLS) must be served before parking.
//
// The connection must be a *net.TCPConn or *net.UnixConn, or anything
// whose SyscallConn gives a descriptor epoll accepts. Otherwise, and on
// systems other than Linux, Park returns an error wrapping ErrUnsupported
// and the caller waits for the next bytes with a blocking read on its own
// goroutine, as it would without a Parker.
//
// # Why
//
// net/http keeps a goroutine (its stack grown to 8 KiB by the time it
// waits) and two 4 KiB bufio buffers per idle keep-alive connection: with
// the rest of its per-connection state, about 22 KB of RSS per idle client
// in lbproxy, against 1.15 KB for HAProxy. A parked connection costs a
// 48-byte slot here, the kernel's epoll entry (outside the process's
// memory), and whatever the caller keeps for it; it costs no goroutine.
// BenchmarkParkedMemory measures 45 bytes of heap per parked connection
// over 10,000 loopback connections, against 10.5 KB for a goroutine
// blocked in a read through a 4 KiB bufio.Reader next to a 4 KiB
// bufio.Writer (see BENCHMARKS.md).
//
// # How
//
// Park registers the connection's own descriptor (the one the runtime
// uses, found through SyscallConn().Control, which holds it open during
// the call; not a duplicate) in the epoll instance of one of the loops,
// taken in turn, with EPOLLIN|EPOLLRDHUP|EPOLLONESHOT: a readiness fires
// once. The registration is removed (EPOLL_CTL_DEL) before ready is called
// and on Cancel, so the connection can be parked again. The runtime's own
// poller keeps its registration of the same descriptor, which epoll
// allows, and sees the data when the caller reads.
//
// A loop's goroutine waits for its epoll descriptor through the runtime's
// poller (package internal/epoll, shared with internal/pipe), so a loop
// waiting for events is a parked goroutine, not a thread blocked in
// epoll_wait; it ends when the loop has nothing parked, and the next Park
// starts it again.
//
// Registrations live in slots allocated 256 at a time and never freed,
// indexed by the 64 bits of data of their epoll event (slot index and a
// generation that changes each time the slot is freed, so an event or a
// Ticket of an earlier use of the slot is ignored). Park and Cancel take
// the loop's mutex and are O(1).
//
// Deadlines: there is no timer per connection. Each loop has a timing
// wheel of 1024 buckets of Tick (100 ms) and one runtime timer that
// serves it every Tick while some parked connection of the loop has a
// deadline. A connection times out at the first tick at or after its
// deadline: between the deadline and about 100 ms later (plus the
// scheduling latency of the timer), never before. A deadline more than
// 102.4 s ahead waits in its bucket, which the wheel passes once per turn,
// until its tick comes.
//
// Ready functions run on new goroutines that take them from a shared
// stack rather than from a closure each, so that a wake-up does not
// allocate.
//
// # Costs
//
// System calls: Park makes one (epoll_ctl ADD); a wake-up one epoll_ctl
// DEL, plus one epoll_pwait per batch of up to 128 ready connections of a
// loop; Cancel one (DEL). A timeout costs a DEL; the timer wakes every
// 100 ms per loop while deadlines are pending. A loop whose last
// connection is cancelled or times out is woken (one eventfd write) so
// that its goroutine ends. Allocations: none per ParkRaw, wake-up or
// Cancel once warm; Park allocates what (*net.TCPConn).SyscallConn does
// (an 8-byte raw-connection value), which a caller avoids by keeping the
// RawConn and calling ParkRaw. Compared with a goroutine blocked in a
// read, a park and wake-up costs about three more system calls (ADD, DEL,
// a share of a harvest) and a goroutine start: park a connection only
// when it has nothing buffered and a non-blocking read found nothing.
//
// # Limits
//
// The wake-up is level-less: ready(nil) means the socket was readable at
// some point since Park; a read that then finds nothing (another reader
// took the bytes) blocks as usual. Deadlines are coarse (Tick). A broken
// epoll instance (a bug: EBADF, EFAULT, EINVAL from epoll_pwait) wakes
// every connection of its loop with ready(nil) and makes Park return
// ErrUnsupported for that loop from then on, so callers fall back to
// blocking reads. Linux only.
package park
