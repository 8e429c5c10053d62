// Package upgrade replaces a running server process by a new one (a new
// binary, a new configuration) without refusing a connection or failing a
// request: the new process takes over the listening sockets of the old one,
// passed as file descriptors over a unix socket, as HAProxy's -x and
// Envoy's hot restart do, and the old one stops accepting, drains its open
// connections and exits.
//
// # Procedure
//
// Every process of the program is started with the same upgrade socket
// path, and makes an [Upgrader] with it:
//
//	u := &upgrade.Upgrader{Path: "/run/lbproxy/upgrade.sock", Logger: logger}
//	defer u.Close()
//	if err := u.Start(ctx); err != nil { // takes the running process's sockets, if any
//		return err
//	}
//	ln, err := u.Listen(ctx, "tcp", ":443")       // inherited, or fresh
//	pc, err := u.ListenPacket(ctx, "udp", ":443") // the same for QUIC
//	...                                           // build the server on ln and pc
//	go func() {
//		select {
//		case <-u.Upgraded(): // a successor serves: drain and exit
//			cancel()
//		case <-ctx.Done():
//		}
//	}()
//	// Serving (connections queue meanwhile): the old process drains, and
//	// Path is served for the next upgrade.
//	if err := u.Ready(ctx); err != nil {
//		return err // the old process serves on (ErrPredecessor: it did not acknowledge)
//	}
//	return lb.Serve(ctx, srv, ln, 30*time.Second)
//
// The first process finds no one at Path and listens afresh. Starting the
// same command again (the new binary, or the same one) makes it the
// successor:
//
//  1. Start connects to Path; both ends check with the kernel
//     (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS and FreeBSD) that the
//     other runs as the same user, else nothing is handed over. The
//     running process sends the names of its sockets ("tcp :443",
//     "udp :443") and duplicates of their descriptors (SCM_RIGHTS).
//  2. Listen and ListenPacket return the inherited socket opened with the
//     same network and address (or bound to that address), and a fresh
//     one for the others. The Listen and ListenPacket methods have the
//     signature of hooks such as lb/config's RuntimeOptions.Listen and
//     ListenPacket.
//  3. Ready, once the successor serves, closes the inherited sockets
//     nobody asked for, binds a new socket beside Path (mode 0600) and
//     tells the old process (READY), which closes [Upgrader.Upgraded] and
//     acknowledges (DRAINING). Only then does Ready rename the new socket
//     onto Path (which must be a socket, or nothing): until the old
//     process drains, Path is its socket, and afterwards the new one's,
//     with no moment without a server.
//  4. The old process, on Upgraded, stops accepting (closes its
//     listeners), drains its open connections with its grace and exits.
//
// If the successor fails before the old process acknowledges READY (a bad
// configuration, a crash), the old process is not told anything, or gives
// up, and serves on, with Path, and serves the next attempt; a successor
// that does not call Ready within ReadyTimeout is abandoned the same way.
// A successor whose READY is not acknowledged looks whether the old process
// still serves Path: if it does (it gave up), Ready fails with
// [ErrPredecessor] and the successor must stop, so that two processes never
// serve with only one reachable by the next upgrade; if nobody does (the
// old process exited), the successor serves Path alone. One handover runs
// at a time: a second successor meanwhile waits for half its Timeout (or
// until Close), then is refused.
//
// Close removes Path only while no successor holds the sockets: once one
// was handed them, Path is left to it (it renames its socket onto Path
// when it serves, or when it finds the old process gone), so that an old
// process stopping just as its successor takes Path never removes the
// successor's socket, which would fail the next upgrade. A successor that
// closed its end without READY frees Path again; a stale socket file left
// by one that gave up otherwise is harmless (Start takes a socket nobody
// serves for none, and Ready replaces it).
//
// # Why no connection is refused
//
// The successor does not bind a second socket next to the old one (as
// SO_REUSEPORT siblings would, each with its own accept queue, whose
// queued connections are reset when its owner closes it): it holds the
// very same socket, one accept queue, through a second descriptor. A
// socket is closed when its last descriptor is, so the old process
// closing its listener only closes its descriptor; the socket stays
// listening. Connections queued in the kernel's backlog are accepted by
// whichever process accepts first, and once the old one stops, all by the
// new one. Connections the old process accepted stay its own until they
// end or its grace does. Idle HTTP keep-alive connections are closed by
// the old process's drain; clients retry an idempotent request that meets
// such a close (Go's http.Transport and browsers do).
//
// The old process should stop accepting as soon as Upgraded is closed,
// before it drains: from then on the new process takes every queued
// connection. An HTTP server also needs the connections it accepted just
// before to have their first request read before it shuts down: net/http's
// Server.Shutdown closes, unanswered, a connection whose request it reads
// after Shutdown began. examples/lbproxy does both (its upgrade.go: the
// listeners are paused; the ConnState hook keeps the connections still
// waiting for their first request, and the drain begins when none
// accepted recently is left). [Upgrader.OnHandover] tells when a
// successor holds the sockets, for a program that prepares then.
//
// A socket the successor is not asked for (an address dropped from the
// configuration) is closed when the old process exits; connections still
// queued on it then are reset, as on any stop.
//
// # QUIC
//
// A UDP socket has no accept queue: every datagram goes to whichever
// process reads the socket first. While the old process drains its QUIC
// connections (HTTP/3's GOAWAY, requests in flight finish), both processes
// read the shared socket, and a datagram of a connection that reaches the
// other process is dropped there (lbkit's HTTP/3 server sends no stateless
// resets, which would end the connection); QUIC's loss recovery resends
// it, so connections of both processes go on, with losses, until the old
// process closes its descriptor at the end of its drain. A client's
// CONNECTION_CLOSE is not resent, though: when the new process reads it,
// the old one keeps the connection until its grace ends, so with HTTP/3
// clients the old process often exits only then. Its connections still
// open at that point are closed, and their clients reconnect, to the new
// process. Steering each datagram to its owner by connection ID (as
// Envoy's and HAProxy's eBPF programs do) is left out.
//
// # Security and limits
//
// The upgrade socket's file has mode 0600 and the peer's user id is checked
// before anything is read or sent, both ways. Every exchange is bounded by
// Timeout (DefaultTimeout) and, for the wait for READY, ReadyTimeout
// (DefaultReadyTimeout); lines are at most 256 bytes, the list of sockets
// 16 KiB and 64 sockets. A socket beyond 64, or whose name cannot be
// written (a unix socket path with white space), is not handed over (a
// warning is logged): the successor opens it afresh, which fails while the
// old process holds it. Received descriptors are close-on-exec. The protocol is text, versioned
// ("LBKIT-UPGRADE 1"): a successor of another version is refused and
// fails to start, leaving the old process serving.
//
// It works on Linux, macOS and FreeBSD; elsewhere Start and Ready return
// [ErrUnsupported], and Listen and ListenPacket open fresh sockets.
package upgrade
