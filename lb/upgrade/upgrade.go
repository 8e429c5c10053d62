package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/internal/keepalive"
)

// Defaults of the Upgrader's timeouts.
const (
	// DefaultTimeout bounds each exchange on the upgrade socket: the
	// connection and the handover of the sockets, and the successor's
	// READY and its answer.
	DefaultTimeout = 10 * time.Second
	// DefaultReadyTimeout bounds how long a running process waits for a
	// successor that took its sockets to say it serves them.
	DefaultReadyTimeout = 2 * time.Minute
)

// ErrUnsupported is returned by Start and Ready on systems that cannot pass
// sockets between processes (other than Linux, macOS and FreeBSD).
var ErrUnsupported = errors.New("upgrade: not supported on this system")

// ErrPredecessor is wrapped by Ready's error when the predecessor did not
// acknowledge READY (it gave up waiting, or could not read it) and still
// serves the upgrade socket: it serves on, and this process must not (it
// stops: closes its listeners, which leaves the shared sockets open, and
// exits), lest two processes serve with only one reachable by the next
// upgrade. A predecessor that is gone (nobody serves Path any more) is no
// error: Ready then serves Path and returns nil.
var ErrPredecessor = errors.New("upgrade: the previous process did not acknowledge and serves on")

// An Upgrader hands the listening sockets of a running process over to its
// successor, and takes those of its predecessor. A program makes one at
// start, calls Start, opens every listening socket through Listen and
// ListenPacket, calls Ready once it serves them, and stops (drains) when
// Upgraded is closed. See the package documentation.
//
// Its methods are safe for concurrent use. The zero value with a Path is
// ready to use; the fields must not change after Start.
type Upgrader struct {
	// Path is the upgrade socket's file name. Required.
	Path string

	// Timeout bounds each exchange on the upgrade socket (0:
	// DefaultTimeout).
	Timeout time.Duration

	// ReadyTimeout bounds how long this process, serving the upgrade
	// socket, waits for a successor that took its sockets to say it is
	// ready; then the handover is abandoned and this process serves on,
	// and the successor's Ready fails with ErrPredecessor (0:
	// DefaultReadyTimeout).
	ReadyTimeout time.Duration

	// OnHandover, if set, is called with true when a successor has been
	// handed this process's sockets and is waited for (ReadyTimeout), and
	// with false if it then does not become ready; when it does, Upgraded
	// is closed instead. It runs in the handover's goroutine, one handover
	// at a time, and must not block. A program uses it to prepare for the
	// drain that likely follows, such as counting the connections it
	// accepts meanwhile.
	OnHandover func(underWay bool)

	// Logger receives the handovers (Info) and the refused or abandoned
	// ones (Warn). Nil means slog.Default().
	Logger *slog.Logger

	// ListenConfig opens the sockets that are not inherited (its Control
	// sets socket options such as IP_FREEBIND). The zero value is a plain
	// net.ListenConfig. An inherited socket keeps the options it has, but
	// the TCP keep-alive its connections get at accept follows
	// ListenConfig's KeepAlive and KeepAliveConfig all the same (see
	// lb.ListenKeepAlive): Go's listener made from a file turns it on with
	// its default (15 s) whatever a ListenConfig says, so Listen wraps an
	// inherited TCP listener to set it per connection, unless ListenConfig
	// leaves it at Go's default too (KeepAlive 0, KeepAliveConfig not
	// enabled).
	ListenConfig net.ListenConfig

	mu        sync.Mutex
	started   bool
	readied   bool
	closed    bool
	pred      *net.UnixConn     // to the predecessor, from Start to Ready
	inherited []inherited       // handed over by the predecessor, not yet taken
	taken     []string          // names of the inherited sockets, for Inherited
	own       []owned           // sockets opened by Listen and ListenPacket
	done      chan struct{}     // closed by Close
	ln        *net.UnixListener // the upgrade socket, from Ready
	lnIno     uint64            // its file's inode, to remove only our own
	heirs     int               // successors handed the sockets that may take Path
	upgraded  chan struct{}     // closed when a successor is ready
	conns     map[*net.UnixConn]struct{}
	handing   chan struct{} // holds the one handover under way
	wg        sync.WaitGroup
}

// inherited is a socket handed over by the predecessor.
type inherited struct {
	name socketName
	file *os.File
}

// owned is a socket this process serves, and may hand over.
type owned struct {
	name      socketName
	conn      syscall.Conn
	inherited bool // taken from the predecessor
}

func (u *Upgrader) logger() *slog.Logger {
	if u.Logger != nil {
		return u.Logger
	}
	return slog.Default()
}

func (u *Upgrader) timeout() time.Duration {
	if u.Timeout > 0 {
		return u.Timeout
	}
	return DefaultTimeout
}

func (u *Upgrader) readyTimeout() time.Duration {
	if u.ReadyTimeout > 0 {
		return u.ReadyTimeout
	}
	return DefaultReadyTimeout
}

// Start connects to the process serving Path, if there is one, checks that
// it runs as this process's user, and takes the sockets it hands over;
// Listen and ListenPacket then return them. With no process serving Path
// (no file, or a socket nobody listens on), Start returns nil and Listen
// opens fresh sockets. ctx bounds the exchange, as Timeout does.
//
// The predecessor keeps serving until Ready tells it to drain; if this
// process stops before (Close, or its exit), the predecessor serves on.
func (u *Upgrader) Start(ctx context.Context) error {
	if !supported {
		return ErrUnsupported
	}
	if u.Path == "" {
		return errors.New("upgrade: Upgrader.Path is empty")
	}
	u.mu.Lock()
	if u.started || u.closed {
		u.mu.Unlock()
		return errors.New("upgrade: Start called twice, or after Close")
	}
	u.started = true
	u.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, u.timeout())
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", u.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			u.logger().Debug("upgrade: no running process to take sockets from", slog.String("socket", u.Path))
			return nil
		}
		return fmt.Errorf("upgrade: connecting to %s: %w", u.Path, err)
	}
	uc := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	uid, pid, err := peerCred(uc)
	if err == nil && uid != os.Geteuid() {
		err = fmt.Errorf("upgrade: the process serving %s runs as user %d, not %d", u.Path, uid, os.Geteuid())
	}
	if err == nil {
		_, err = uc.Write(helloMessage())
	}
	var names []socketName
	var files []*os.File
	if err == nil {
		names, files, err = readSockets(uc)
	}
	if err == nil && !stop() {
		err = ctx.Err()
	}
	if err != nil {
		uc.Close()
		for _, f := range files {
			f.Close()
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("upgrade: taking sockets from %s: %w", u.Path, err)
	}
	uc.SetDeadline(time.Time{})

	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		uc.Close()
		for _, f := range files {
			f.Close()
		}
		return errors.New("upgrade: closed during Start")
	}
	u.pred = uc
	for i, n := range names {
		u.inherited = append(u.inherited, inherited{name: n, file: files[i]})
		u.taken = append(u.taken, n.String())
	}
	u.logger().Info("upgrade: took the sockets of the running process", slog.String("socket", u.Path),
		slog.Int("pid", pid), slog.Any("sockets", u.taken))
	return nil
}

// readSockets reads the running process's answer to a hello, and the
// sockets it carries.
func readSockets(c *net.UnixConn) ([]socketName, []*os.File, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, oobSpace(maxSockets))
	var fds []int
	files := func() []*os.File {
		fs := make([]*os.File, len(fds))
		for i, fd := range fds {
			fs[i] = os.NewFile(uintptr(fd), "upgrade socket")
		}
		return fs
	}
	n := 0
	for {
		m, oobn, flags, _, err := c.ReadMsgUnix(buf[n:], oob)
		m, oobn = max(m, 0), max(oobn, 0)
		got, rerr := parseRights(oob[:oobn], flags)
		fds = append(fds, got...)
		if rerr != nil {
			return nil, files(), fmt.Errorf("reading the sockets: %w", rerr)
		}
		n += m
		if names, complete, perr := parseSockets(buf[:n]); complete || perr != nil {
			if perr == nil && len(names) != len(fds) {
				perr = fmt.Errorf("%w: %d sockets named, %d received", errProtocol, len(names), len(fds))
			}
			return names, files(), perr
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, files(), fmt.Errorf("reading the sockets: %w", err)
		}
		if n == len(buf) {
			return nil, files(), fmt.Errorf("%w: answer longer than %d bytes", errProtocol, maxMessage)
		}
	}
}

// Inherited returns the names ("tcp 127.0.0.1:8443") of the sockets that
// Start took from the predecessor, whether Listen has returned them yet or
// not.
func (u *Upgrader) Inherited() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.taken...)
}

// take removes and returns the inherited socket that a program asking for
// network and addr wants, if any.
func (u *Upgrader) take(network, addr string) (inherited, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, in := range u.inherited {
		if in.name.matches(network, addr) {
			u.inherited = append(u.inherited[:i], u.inherited[i+1:]...)
			return in, true
		}
	}
	return inherited{}, false
}

// keep records a socket this process serves, for the next handover.
func (u *Upgrader) keep(network, addr string, local net.Addr, c syscall.Conn, inherited bool) {
	name := socketName{Network: network, Addr: addr, Local: local.String()}
	if _, port, err := splitPort(addr); err == nil && port == "0" {
		name.Addr = name.Local // the port the kernel chose is the one to ask for
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	// A socket bound to the same address replaces one closed before (a
	// frontend removed and added again).
	u.own = slices.DeleteFunc(u.own, func(o owned) bool {
		return o.name.Network == name.Network && o.name.Local == name.Local
	})
	u.own = append(u.own, owned{name: name, conn: c, inherited: inherited})
}

// Listen returns a listener for network ("tcp", "tcp4", "tcp6", "unix")
// and addr: the socket inherited from the predecessor that was opened with
// the same network and address (or is bound to addr), or else a fresh one,
// as net.ListenConfig.Listen opens it with ctx. Either way the socket is
// handed over to the next successor. The caller owns the listener: closing
// it closes this process's descriptor, never a socket that another process
// also holds.
//
// A unix socket's file is removed when its listener is closed, unless a
// successor took it over; an inherited one's only once the predecessor
// acknowledged Ready (until then it serves on with the file).
func (u *Upgrader) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	if in, ok := u.take(network, addr); ok {
		ln, err := net.FileListener(in.file)
		in.file.Close()
		if err != nil {
			return nil, fmt.Errorf("upgrade: inherited socket %s: %w", in.name, err)
		}
		if ul, ok := ln.(*net.UnixListener); ok {
			// The predecessor's file until it drains (ownInheritedFiles).
			ul.SetUnlinkOnClose(false)
		}
		sc, ok := ln.(syscall.Conn)
		if !ok {
			ln.Close()
			return nil, fmt.Errorf("upgrade: inherited socket %s is a %T", in.name, ln)
		}
		u.keep(network, addr, ln.Addr(), sc, true)
		if tl, ok := ln.(*net.TCPListener); ok && (u.ListenConfig.KeepAlive != 0 || u.ListenConfig.KeepAliveConfig.Enable) {
			return keepalive.Listener(tl, u.ListenConfig.KeepAlive, u.ListenConfig.KeepAliveConfig), nil
		}
		return ln, nil
	}
	ln, err := u.ListenConfig.Listen(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if sc, ok := ln.(syscall.Conn); ok {
		u.keep(network, addr, ln.Addr(), sc, false)
	}
	return ln, nil
}

// ListenPacket is Listen for packet sockets: network "udp", "udp4",
// "udp6" (QUIC's sockets) or "unixgram". The packets that reach a shared
// UDP socket go to whichever process reads first; see the package
// documentation for what that means to QUIC connections.
func (u *Upgrader) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	if in, ok := u.take(network, addr); ok {
		pc, err := net.FilePacketConn(in.file)
		in.file.Close()
		if err != nil {
			return nil, fmt.Errorf("upgrade: inherited socket %s: %w", in.name, err)
		}
		sc, ok := pc.(syscall.Conn)
		if !ok {
			pc.Close()
			return nil, fmt.Errorf("upgrade: inherited socket %s is a %T", in.name, pc)
		}
		u.keep(network, addr, pc.LocalAddr(), sc, true)
		return pc, nil
	}
	pc, err := u.ListenConfig.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if sc, ok := pc.(syscall.Conn); ok {
		u.keep(network, addr, pc.LocalAddr(), sc, false)
	}
	return pc, nil
}

// Ready says that this process serves its sockets: it closes the inherited
// sockets that Listen and ListenPacket were not asked for, binds the
// upgrade socket for the next successor beside Path, tells the
// predecessor, if any, to drain, waiting (Timeout) for it to acknowledge,
// and only then renames the new socket onto Path and serves it: until the
// predecessor drains, Path stays the predecessor's. ctx bounds the
// exchange too. Call it once, after the listeners are served; connections
// that arrive before are queued by the kernel and accepted by either
// process.
//
// When the predecessor does not acknowledge, Ready checks whether it still
// serves Path: if it does (it gave up waiting, see ReadyTimeout), Ready
// returns an error wrapping ErrPredecessor and this process must stop,
// leaving the predecessor serving; if nobody does (it exited), this
// process serves Path and Ready returns nil. Other errors (the upgrade
// socket cannot be bound) also leave the predecessor serving, as if this
// process had not started; the caller stops.
func (u *Upgrader) Ready(ctx context.Context) error {
	if !supported {
		return ErrUnsupported
	}
	if u.Path == "" {
		return errors.New("upgrade: Upgrader.Path is empty")
	}
	u.mu.Lock()
	if u.readied || u.closed {
		u.mu.Unlock()
		return errors.New("upgrade: Ready called twice, or after Close")
	}
	u.readied = true
	pred, unused := u.pred, u.inherited
	u.inherited = nil // u.pred stays, for Close to end the exchange
	u.mu.Unlock()
	for _, in := range unused {
		u.logger().Warn("upgrade: an inherited socket was not asked for: closed", slog.String("socket", in.name.String()))
		in.file.Close()
	}

	ln, tmp, err := bindUpgrade(u.Path)
	if err != nil {
		if pred != nil {
			pred.Close() // the predecessor serves on
		}
		return err
	}
	drop := func() {
		ln.Close()
		os.Remove(tmp)
	}
	if testHookBound != nil {
		testHookBound()
	}
	if pred != nil {
		perr := u.tellReady(ctx, pred)
		if perr != nil && u.serving(ctx) {
			drop()
			return fmt.Errorf("%w: %w", ErrPredecessor, perr)
		}
		if perr != nil {
			u.logger().Warn("upgrade: the previous process did not acknowledge and is gone; serving alone",
				slog.String("socket", u.Path), slog.Any("error", perr))
		}
	}

	if testHookAcked != nil {
		testHookAcked()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pred = nil
	if u.closed {
		drop()
		return errors.New("upgrade: closed during Ready")
	}
	ino, err := publishUpgrade(tmp, u.Path)
	if err != nil {
		drop()
		u.ownInheritedFiles()
		// The predecessor drains: this process serves on, without an
		// upgrade socket.
		u.logger().Error("upgrade: the upgrade socket cannot be served; no later upgrade is possible", slog.Any("error", err))
		return nil
	}
	u.ln, u.lnIno = ln, ino
	u.ownInheritedFiles()
	u.wg.Go(func() { u.serve(ln) })
	return nil
}

// testHookBound, if set, runs in Ready once the upgrade socket is bound,
// before READY is sent.
var testHookBound func()

// testHookAcked, if set, runs in Ready once the predecessor answered
// READY (or is gone), before the upgrade socket is renamed onto Path.
var testHookAcked func()

// ownInheritedFiles makes the inherited unix listeners remove their files
// on close, as fresh ones do, once the predecessor drains. u.mu is held.
func (u *Upgrader) ownInheritedFiles() {
	for _, o := range u.own {
		if ul, ok := o.conn.(*net.UnixListener); ok && o.inherited {
			ul.SetUnlinkOnClose(true)
		}
	}
}

// serving reports whether a process serves Path, answering a connection
// within Timeout (and ctx). It tells a predecessor that gave up on this
// process from one that is gone: a socket file nobody listens on, or no
// file, is nobody.
func (u *Upgrader) serving(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, u.timeout())
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", u.Path)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return true
}

// tellReady sends READY to the predecessor and waits for its DRAINING.
func (u *Upgrader) tellReady(ctx context.Context, c *net.UnixConn) error {
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, u.timeout())
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte(msgReady + "\n")); err != nil {
		return err
	}
	line, err := readLine(c)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return err
	}
	if line != msgDrain {
		return fmt.Errorf("%w: answer %q to READY", errProtocol, clip(line))
	}
	u.logger().Info("upgrade: the previous process drains", slog.String("socket", u.Path))
	return nil
}

// bindUpgrade binds the upgrade socket for path under a temporary name
// beside it, restricted to this user (0600); publishUpgrade then renames
// it onto path. It returns the listener and the temporary name.
func bindUpgrade(path string) (*net.UnixListener, string, error) {
	// Replace a socket, never a file that happens to have the name.
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, "", fmt.Errorf("upgrade: %s exists and is not a socket", path)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, "", fmt.Errorf("upgrade: serving %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("upgrade: serving %s: %w", path, err)
	}
	return ln, tmp, nil
}

// publishUpgrade renames the upgrade socket bound at tmp onto path,
// replacing the predecessor's socket or a stale one in one step, so that
// there is no moment without a socket at path. It returns the inode of its
// file, for Close to remove only its own.
func publishUpgrade(tmp, path string) (uint64, error) {
	fi, err := os.Lstat(tmp)
	if err != nil {
		return 0, fmt.Errorf("upgrade: serving %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return 0, fmt.Errorf("upgrade: %s exists and is not a socket", path)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("upgrade: serving %s: %w", path, err)
	}
	return inode(fi), nil
}

// serve accepts successors on the upgrade socket until it is closed.
func (u *Upgrader) serve(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			c.Close()
			return
		}
		if u.conns == nil {
			u.conns = make(map[*net.UnixConn]struct{})
		}
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Go(func() { u.handover(c) })
	}
}

// handover serves one successor: it checks its user and hello, hands it
// the sockets, and waits for its READY, upon which Upgraded is closed.
func (u *Upgrader) handover(c *net.UnixConn) {
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	log := u.logger()
	c.SetDeadline(time.Now().Add(u.timeout()))
	uid, pid, err := peerCred(c)
	if err != nil {
		log.Warn("upgrade: refused a successor: its credentials are unknown", slog.Any("error", err))
		return
	}
	log = log.With(slog.Int("pid", pid))
	if uid != os.Geteuid() {
		log.Warn("upgrade: refused a successor of another user", slog.Int("uid", uid))
		c.Write(refusalMessage("another user"))
		return
	}
	line, err := readLine(c)
	if err == nil {
		err = parseHello(line)
	}
	if err != nil {
		log.Warn("upgrade: refused a successor", slog.Any("error", err))
		c.Write(refusalMessage(err.Error()))
		return
	}
	// A successor that comes while another holds the sockets waits for
	// half its Timeout, in case the other is just gone.
	wait := time.NewTimer(u.timeout() / 2)
	defer wait.Stop()
	select {
	case u.slot() <- struct{}{}:
	case <-u.closing():
		c.Write(refusalMessage("the running process stops"))
		return
	case <-wait.C:
		log.Warn("upgrade: refused a successor: another upgrade is under way")
		c.Write(refusalMessage("another upgrade is under way"))
		return
	}
	defer func() { <-u.slot() }()
	if u.isClosed() {
		return // Close came as the slot freed
	}
	if u.isUpgraded() {
		c.Write(refusalMessage("already upgraded"))
		return
	}

	names, fds := u.dupOwn(log)
	defer func() {
		for _, fd := range fds {
			closeFD(fd)
		}
	}()
	msg, err := socketsMessage(names)
	if err != nil {
		log.Warn("upgrade: refused a successor", slog.Any("error", err))
		c.Write(refusalMessage(err.Error()))
		return
	}
	// From here on the successor may take Path, even after this process
	// gave up on it (it serves alone once this one is gone): Close leaves
	// the file alone, lest it remove the successor's.
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.heirs++
	u.mu.Unlock()
	if _, _, err := c.WriteMsgUnix(msg, rights(fds), nil); err != nil {
		log.Warn("upgrade: handing the sockets over failed", slog.Any("error", err))
		u.disinherit() // its Start fails
		return
	}
	for _, fd := range fds {
		closeFD(fd)
	}
	fds = nil
	log.Info("upgrade: handed the sockets over; waiting for the successor to serve them", slog.Int("sockets", len(names)))
	if u.OnHandover != nil {
		u.OnHandover(true)
	}

	c.SetDeadline(time.Now().Add(u.readyTimeout()))
	line, err = readLine(c)
	if err == nil && line != msgReady {
		err = fmt.Errorf("%w: %q instead of READY", errProtocol, clip(line))
	}
	if err != nil {
		log.Warn("upgrade: the successor did not become ready; serving on", slog.Any("error", err))
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// It closed its end without READY (it stopped, or Ready
			// failed before telling): it never takes Path.
			u.disinherit()
		}
		if u.OnHandover != nil {
			u.OnHandover(false)
		}
		return
	}
	u.markUpgraded()
	c.SetDeadline(time.Now().Add(u.timeout()))
	c.Write([]byte(msgDrain + "\n"))
	log.Info("upgrade: the successor serves; draining")
}

// disinherit forgets a successor that was handed the sockets and will
// never take Path.
func (u *Upgrader) disinherit() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.heirs--
}

// slot returns the channel whose one place a handover holds.
func (u *Upgrader) slot() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.handing == nil {
		u.handing = make(chan struct{}, 1)
	}
	return u.handing
}

func (u *Upgrader) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// closing returns the channel that Close closes.
func (u *Upgrader) closing() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done == nil {
		u.done = make(chan struct{})
	}
	return u.done
}

// dupOwn duplicates the descriptors of the sockets this process serves,
// skipping those already closed, those beyond maxSockets and those whose
// names cannot be written on the upgrade socket (a unix path with a
// space): the successor opens these afresh.
func (u *Upgrader) dupOwn(log *slog.Logger) ([]socketName, []int) {
	u.mu.Lock()
	own := append([]owned(nil), u.own...)
	u.mu.Unlock()
	var names []socketName
	var fds []int
	for _, o := range own {
		if !o.name.nameable() {
			log.Warn("upgrade: a socket whose name has a space cannot be handed over", slog.String("socket", o.name.String()))
			continue
		}
		if len(fds) == maxSockets {
			log.Warn("upgrade: too many sockets; not handed over", slog.String("socket", o.name.String()))
			continue
		}
		fd, err := dupSocket(o.conn)
		if err != nil {
			// Closed by its owner: forget it.
			log.Debug("upgrade: socket not handed over", slog.String("socket", o.name.String()), slog.Any("error", err))
			u.forget(o.conn)
			continue
		}
		names, fds = append(names, o.name), append(fds, fd)
	}
	return names, fds
}

// forget drops a socket that can no longer be handed over.
func (u *Upgrader) forget(c syscall.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.own = slices.DeleteFunc(u.own, func(o owned) bool { return o.conn == c })
}

// markUpgraded closes Upgraded and stops serving the upgrade socket, whose
// file the successor replaces once it reads DRAINING.
func (u *Upgrader) markUpgraded() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, o := range u.own {
		if ul, ok := o.conn.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false) // the successor serves it now
		}
	}
	if u.upgraded == nil {
		u.upgraded = make(chan struct{})
	}
	select {
	case <-u.upgraded:
	default:
		close(u.upgraded)
	}
	if u.ln != nil {
		u.ln.Close()
	}
}

func (u *Upgrader) isUpgraded() bool {
	select {
	case <-u.Upgraded():
		return true
	default:
		return false
	}
}

// Upgraded returns a channel that is closed when a successor has taken
// this process's sockets and serves them: the process should then stop
// accepting (close its listeners, which leaves the shared sockets open),
// drain its connections and exit.
func (u *Upgrader) Upgraded() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.upgraded == nil {
		u.upgraded = make(chan struct{})
	}
	return u.upgraded
}

// Close stops serving the upgrade socket, ends the handovers under way,
// and closes the inherited sockets that were not asked for. It removes the
// upgrade socket's file only if it is still this process's and no
// successor was handed the sockets (or every one that was stopped without
// READY): the file then belongs to the successor, which replaces it when
// it serves, or, if the successor gives up, is a stale socket that Start
// takes for nobody and the next Ready replaces. Before Ready, it leaves the
// predecessor serving. It does not close the listeners that Listen and
// ListenPacket returned, which their callers own.
func (u *Upgrader) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	if u.done == nil {
		u.done = make(chan struct{})
	}
	close(u.done)
	pred, unused, ln, ino, heirs := u.pred, u.inherited, u.ln, u.lnIno, u.heirs
	u.pred, u.inherited = nil, nil
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	if pred != nil {
		pred.Close() // before Ready succeeded: the predecessor serves on
	}
	for _, in := range unused {
		in.file.Close()
	}
	if ln != nil {
		ln.Close()
		// With no heir, no successor of this process renames its socket
		// onto Path between the check and the removal.
		if fi, err := os.Lstat(u.Path); heirs == 0 && err == nil && ino != 0 && inode(fi) == ino {
			os.Remove(u.Path)
		}
	}
	u.wg.Wait()
	return nil
}

// readLine reads one line, without its "\n", of at most 256 bytes; bytes
// after it are a protocol error, as each side waits for the other's answer.
func readLine(c net.Conn) (string, error) {
	var buf [256]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			if i != n-1 {
				return "", fmt.Errorf("%w: bytes after a line", errProtocol)
			}
			return string(buf[:i]), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if n == len(buf) {
			return "", fmt.Errorf("%w: line longer than %d bytes", errProtocol, len(buf))
		}
	}
}
