package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// The protocol on the upgrade socket, version 1. Every message is text, one
// or more lines ending in "\n":
//
//	successor -> running:  LBKIT-UPGRADE 1
//	running -> successor:  LBKIT-UPGRADE 1 OK N
//	                       NETWORK ADDR LOCAL      (N lines; the N sockets ride
//	                       ...                      along as SCM_RIGHTS)
//	                   or  LBKIT-UPGRADE 1 ERR REASON
//	successor -> running:  READY
//	running -> successor:  DRAINING
//
// ADDR is the address the program asked for (":8443"), LOCAL the one the
// socket is bound to ("[::]:8443"); neither may hold white space (a socket
// whose name does, such as a unix path with a space, is not handed over).
const (
	magic    = "LBKIT-UPGRADE"
	version  = 1
	msgReady = "READY"
	msgDrain = "DRAINING"

	// maxSockets bounds the sockets of one handover, and maxMessage the
	// bytes of any message read from the socket.
	maxSockets = 64
	maxMessage = 16 << 10
)

// errProtocol is wrapped by every error about a malformed message.
var errProtocol = errors.New("upgrade: protocol error")

// socketName is how a socket is named on the upgrade socket: its network
// ("tcp", "udp", "unix", ...), the address its program asked for, and the
// address it is bound to.
type socketName struct {
	Network, Addr, Local string
}

func (n socketName) String() string { return n.Network + " " + n.Addr }

// matches reports whether a program asking for network and addr wants this
// socket: the same network and the address it asked for or is bound to. An
// address with port 0 asks for a fresh port and matches nothing.
func (n socketName) matches(network, addr string) bool {
	if network != n.Network {
		return false
	}
	if _, port, err := splitPort(addr); err == nil && port == "0" {
		return false
	}
	return addr == n.Addr || addr == n.Local
}

// splitPort returns the host and port of an IP address, or an error for a
// unix socket path.
func splitPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", errors.New("no port")
	}
	return addr[:i], addr[i+1:], nil
}

// nameable reports whether n can be written on the upgrade socket: no
// field empty, or holding white space (a unix socket's path may), which
// parseSockets splits on.
func (n socketName) nameable() bool {
	for _, f := range []string{n.Network, n.Addr, n.Local} {
		if f == "" || strings.IndexFunc(f, unicode.IsSpace) >= 0 {
			return false
		}
	}
	return true
}

// helloMessage is the successor's first message.
func helloMessage() []byte { return fmt.Appendf(nil, "%s %d\n", magic, version) }

// parseHello checks a successor's first line (without its "\n").
func parseHello(line string) error {
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != magic {
		return fmt.Errorf("%w: hello %q", errProtocol, clip(line))
	}
	if f[1] != strconv.Itoa(version) {
		return fmt.Errorf("%w: version %q, this side speaks %d", errProtocol, clip(f[1]), version)
	}
	return nil
}

// refusalMessage refuses a handover, giving reason.
func refusalMessage(reason string) []byte {
	return fmt.Appendf(nil, "%s %d ERR %s\n", magic, version, strings.ReplaceAll(reason, "\n", " "))
}

// socketsMessage lists the sockets handed over, in the order of their
// descriptors.
func socketsMessage(names []socketName) ([]byte, error) {
	b := fmt.Appendf(nil, "%s %d OK %d\n", magic, version, len(names))
	for _, n := range names {
		if !n.nameable() {
			return nil, fmt.Errorf("upgrade: socket %q cannot be named on the upgrade socket", n)
		}
		b = fmt.Appendf(b, "%s %s %s\n", n.Network, n.Addr, n.Local)
	}
	if len(b) > maxMessage {
		return nil, fmt.Errorf("upgrade: %d sockets make a message larger than %d bytes", len(names), maxMessage)
	}
	return b, nil
}

// parseSockets parses the running process's answer to a hello: complete
// reports whether msg holds the whole answer yet (it may arrive in parts);
// when it does, names are the sockets listed, or err says why there are
// none.
func parseSockets(msg []byte) (names []socketName, complete bool, err error) {
	head, rest, ok := bytes.Cut(msg, []byte("\n"))
	if !ok {
		return nil, false, nil
	}
	f := strings.Fields(string(head))
	if len(f) < 3 || f[0] != magic {
		return nil, true, fmt.Errorf("%w: answer %q", errProtocol, clip(string(head)))
	}
	if f[1] != strconv.Itoa(version) {
		return nil, true, fmt.Errorf("%w: the running process speaks version %q, this one %d", errProtocol, clip(f[1]), version)
	}
	switch f[2] {
	case "ERR":
		_, reason, _ := strings.Cut(string(head), " ERR ")
		return nil, true, fmt.Errorf("upgrade: the running process refused: %s", clip(reason))
	case "OK":
	default:
		return nil, true, fmt.Errorf("%w: answer %q", errProtocol, clip(string(head)))
	}
	if len(f) != 4 {
		return nil, true, fmt.Errorf("%w: answer %q", errProtocol, clip(string(head)))
	}
	n, err := strconv.Atoi(f[3])
	if err != nil || n < 0 || n > maxSockets {
		return nil, true, fmt.Errorf("%w: socket count %q (at most %d)", errProtocol, clip(f[3]), maxSockets)
	}
	if bytes.Count(rest, []byte("\n")) < n {
		return nil, false, nil
	}
	for range n {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		g := strings.Fields(string(line))
		if len(g) != 3 {
			return nil, true, fmt.Errorf("%w: socket %q", errProtocol, clip(string(line)))
		}
		names = append(names, socketName{Network: g[0], Addr: g[1], Local: g[2]})
	}
	if len(rest) > 0 {
		return nil, true, fmt.Errorf("%w: %d bytes after the sockets", errProtocol, len(rest))
	}
	return names, true, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
