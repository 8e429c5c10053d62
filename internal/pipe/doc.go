// Package pipe copies bytes both ways between a client connection and a
// server connection, for the L4 (TCP and TLS tunnel) side of a load
// balancer, in the manner of HAProxy's tunnel mode.
//
// # Ownership
//
// Proxy owns both connections from the moment it is called: it clears their
// deadlines, sets read deadlines of its own, half-closes them and closes
// them before it returns. The caller must not read, write or set deadlines
// on them meanwhile, and should pass the raw connections (after taking the
// bytes a wrapper has buffered, which go in Options.ClientPending).
//
// Start is Proxy without the wait: when the event loop carries the copy, it
// returns as soon as both sockets are registered on the loop, and the loop
// calls its done function with Proxy's results when the session ends. No
// goroutine is held by an idle session then: its cost is the loop's
// bookkeeping (a few hundred bytes) and the sockets' kernel buffers. On the
// other paths Start copies to the end before it returns, and calls done
// first. Proxy is Start followed by a wait for done. The connections
// belong to the copy until done is called, also after Start returned.
//
// # Copy paths
//
// Event-loop path: on Linux, when both connections are *net.TCPConn
// (exactly; a wrapper type hides it), Proxy moves the two sockets onto an
// event loop and waits (Start returns). It duplicates their descriptors, closes the
// net.Conns (the sockets stay open through the duplicates) and registers
// the duplicates, edge-triggered and with EPOLLRDHUP, in the epoll
// instance of one of GOMAXPROCS loops (taken in turn). The loop reads into
// one 32 KiB buffer of its own and writes straight to the other socket;
// what the other socket does not take at once waits in a pooled buffer
// while that direction stops reading (backpressure), until the socket is
// writable again. A direction reads at most 16 times in a row before the
// loop serves other sessions and comes back to it.
//
// This is how HAProxy copies, and why: a read that returns less than the
// buffer drained the socket, so the loop waits for the next edge instead of
// trying another read that would fail with EAGAIN. The net package's copy
// (and io.Copy with splice) tries first, which costs a third system call
// per message and direction: with HTTP keep-alive traffic over a TCP
// proxy, 6 system calls per request instead of 4. A FIN or an error that
// came with the last data is not lost: the edge that reported it carried
// EPOLLRDHUP, EPOLLHUP or EPOLLERR, and the loop then reads until EOF or
// the error. Reads, writes and the harvest of events are raw system calls
// (no scheduler bookkeeping: the descriptors are non-blocking, so they
// return promptly), and the loop's goroutine waits for the epoll descriptor
// through the runtime's own poller (package internal/epoll, shared with
// internal/park), as a network read does, so a loop with nothing to do is
// a parked goroutine, not a thread blocked in epoll_wait.
// A loop's goroutine ends when its last session ends; the next session
// starts it again. Should epoll itself fail (a bug: EBADF, EFAULT,
// EINVAL), the loop ends its sessions with that error, resetting their
// connections, and takes no new one: later sessions copy in goroutines.
// The loop never panics. Set LBKIT_PIPE=goroutines in the environment (or
// Options.Goroutines for one call) to copy in goroutines instead.
//
// Splice path: on other systems the event loop is not available. Between
// two *net.TCPConn on Linux with Options.Goroutines set, each direction
// runs in its own goroutine (one of them the caller's) and copies with
// (*net.TCPConn).ReadFrom of an *io.LimitedReader over the source
// connection. The net package recognizes that pair and moves the bytes with
// splice(2), socket to kernel pipe to socket, without copying them through
// user space. The limit (128 KiB) makes ReadFrom return after each chunk so
// that progress is observed; the LimitedReader is reused, and the copy does
// not allocate per chunk. The source is never wrapped in a counting reader,
// which would defeat splice: bytes are counted from ReadFrom's result.
//
// Buffered path: in every other case (a *tls.Conn on either side, wrapped
// connections, other systems), each direction runs in its own goroutine and
// reads into a 32 KiB buffer taken from a sync.Pool and writes it out, so buffers are shared between connections
// and nothing is allocated per connection or per read once warm.
//
// ClientPending is written to the server before the client→server
// direction reads anything from the client (on the event-loop path, before
// the sockets move to the loop), and is counted in up.
//
// # Half-close and errors
//
// When a direction reads EOF, Proxy calls CloseWrite on its destination if
// it has one (*net.TCPConn and *net.UnixConn shut down their write side and
// send a FIN; *tls.Conn sends a close_notify alert) and keeps the other
// direction running until it ends too: a client can send a request, close
// its write side, and still read the whole reply. If the destination has no
// CloseWrite method, or CloseWrite fails, the peer cannot be told about the
// EOF, so Proxy ends the whole session (a clean end).
//
// A read or write error other than EOF (a reset, a broken pipe, a failed TLS
// record) aborts both directions at once; Proxy returns it as an *Error,
// which tells whether the client's or the server's connection failed. The TCP connections (also the ones
// under a *tls.Conn, found through its NetConn method) are then closed with
// SO_LINGER 0, so that both peers see a reset rather than a FIN: a stream
// cut short does not look complete. A connection closed under Proxy
// (net.ErrClosed) ends the session cleanly.
//
// When ctx is done, Proxy closes both connections at once (a FIN, and no
// TLS close_notify, which could block on a peer that does not read) and
// returns context.Cause(ctx). Every goroutine Proxy starts for the call has
// ended when it returns (Start: when done is called); an event loop's
// goroutine, shared by sessions, ends when the loop's last session has
// ended.
//
// # Idle timeout
//
// Options.Idle bounds the time during which no byte moves in either
// direction (HAProxy's "timeout tunnel"): a byte in one direction keeps the
// whole session alive. A watchdog on a timer (no goroutine of its own)
// enforces it and, when it fires, closes both connections; Proxy returns
// ErrIdle. Closing is also what ends a direction blocked writing to a peer
// that does not read: write deadlines are not used, because one expiring in
// the middle of a splice discards the bytes already in the kernel pipe, and
// an expired write leaves a *tls.Conn unusable, so a write cannot be timed
// out and resumed.
//
// On the buffered path every completed read and write records the time, and
// the timeout fires Idle after the last of them (within timer latency). The
// event loop records the time of each round of events in which a session
// moved bytes, with the same result.
//
// On the splice path the bytes move inside the kernel and ReadFrom returns
// only at the end of a chunk, so a stream trickling less than a chunk per
// Idle window would never be seen (the naive design, which records progress
// only per chunk, kills such a session when the other direction is silent:
// an interactive SSH session, a chat). Instead, while no progress has been
// recorded for a tick (Idle/4), the watchdog probes every tick: it sets the
// read deadline of each direction's source in the past. A splice waiting for
// input returns at once with the count of bytes it moved; the direction
// records them, clears the deadline, acknowledges the probe and resumes.
// Nothing is lost: the splice pipe is empty whenever splice waits for input.
// A probe tells that bytes moved since the previous observation, not when,
// so they are dated at the probe: at most about a tick late. The session is
// declared idle only by a probe to which every running direction answered
// without progress, at least Idle after the last recorded progress. Hence:
//
//   - the timeout never fires while a byte moves in either direction at
//     least once per Idle, however small the traffic;
//   - after the last byte it fires between Idle and about 1.5×Idle later
//     (two ticks, plus the wait for the answers: Idle/16, at most 50ms).
//
// Blocked writes: a write blocked on a peer that does not read records
// nothing until it completes. On the buffered and event-loop paths the timeout then fires
// Idle after the last completed read or write in either direction. On the
// splice path such a direction cannot answer probes (its read deadline is
// not looked at before the pipe is empty): it counts as inactive once it has
// owed an answer for a whole Idle window, so the session ends about
// 1.25×Idle after the stall began when the other direction is silent. In
// both cases the session lives on while the other direction is active. The
// bytes a blocked direction delivers before its write completes are not
// observed: one chunk (128 KiB at most) on the splice path, one buffer (32
// KiB) on the buffered path must be taken by the peer within about Idle, or
// the session is considered idle if the other direction is silent (with
// Idle = 30s: a peer reading slower than about 4 KiB/s, or 1 KiB/s).
//
// Cost: while data flows, the watchdog wakes once per tick and makes no
// system call; a silent or trickling spliced session costs one probe per
// tick (two deadline updates and two wakeups).
//
// # Liveness
//
// Stalled tells whether the event loops still serve their events, for
// health checks: each loop stores the time of its last round of events
// (one atomic store per round), and Stalled wakes the running loops and
// reports one that has left its previous wake unserved for too long.
package pipe
