package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// MySQL checks a MySQL or MariaDB server: it reads the server's greeting
// (protocol 10). With User, it then logs in as that user without a password
// (create one for the load balancer, as with HAProxy's mysql-check: CREATE
// USER 'check'@'lb-host'), which must succeed; either way it ends with
// COM_QUIT. Without User the server counts the aborted connection; MySQL
// blocks a host after max_connect_errors of them, so prefer a User.
type MySQL struct {
	User string
}

// maxMySQLPacket bounds the packets read from the server.
const maxMySQLPacket = 16 << 10

// Capability flags of the MySQL protocol.
const (
	mysqlLongPassword     = 0x00000001
	mysqlProtocol41       = 0x00000200
	mysqlSecureConnection = 0x00008000
)

// Check implements Probe.
func (p MySQL) Check(ctx context.Context, t Target) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	seq, greeting, err := readMySQLPacket(c)
	if err != nil {
		c.Close()
		return fmt.Errorf("mysql: greeting: %w", err)
	}
	if err := parseMySQLGreeting(greeting); err != nil {
		c.Close()
		return err
	}
	if p.User == "" {
		c.Close()
		return nil
	}
	login := mysqlLogin(p.User)
	if err := writeMySQLPacket(c, seq+1, login); err != nil {
		c.Close()
		return fmt.Errorf("mysql: send login: %w", err)
	}
	_, reply, err := readMySQLPacket(c)
	if err != nil {
		c.Close()
		return fmt.Errorf("mysql: login: %w", err)
	}
	if err := parseMySQLResult(reply); err != nil {
		c.Close()
		return err
	}
	// COM_QUIT, sequence 0 of a new command.
	closeQuietly(c, []byte{1, 0, 0, 0, 1})
	return nil
}

// readMySQLPacket reads one packet: 3-byte little-endian length, sequence
// number, payload.
func readMySQLPacket(c net.Conn) (seq byte, payload []byte, err error) {
	var head [4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return 0, nil, readErr(err)
	}
	n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
	if n == 0 || n > maxMySQLPacket {
		return 0, nil, fmt.Errorf("%w: not a MySQL packet (length %d, header %q)", ErrUnexpected, n, printable(head[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c, payload); err != nil {
		return 0, nil, readErr(err)
	}
	return head[3], payload, nil
}

func writeMySQLPacket(c net.Conn, seq byte, payload []byte) error {
	b := make([]byte, 4, 4+len(payload))
	b[0], b[1], b[2], b[3] = byte(len(payload)), byte(len(payload)>>8), byte(len(payload)>>16), seq
	_, err := c.Write(append(b, payload...))
	return err
}

// parseMySQLGreeting checks the payload of the server's first packet: a
// protocol 10 handshake (version string, connection id, ...), or an error
// packet (too many connections, host blocked).
func parseMySQLGreeting(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("mysql: %w: empty greeting", ErrUnexpected)
	}
	switch b[0] {
	case 0xff:
		return mysqlError(b)
	case 10:
	default:
		return fmt.Errorf("mysql: %w: not a MySQL greeting (protocol %d)", ErrUnexpected, b[0])
	}
	rest := b[1:]
	end := -1
	for i, ch := range rest {
		if ch == 0 {
			end = i
			break
		}
		if ch < 0x20 || ch > 0x7e {
			return fmt.Errorf("mysql: %w: not a MySQL greeting (bad server version)", ErrUnexpected)
		}
	}
	if end <= 0 {
		return fmt.Errorf("mysql: %w: not a MySQL greeting (no server version)", ErrUnexpected)
	}
	rest = rest[end+1:]
	// connection id (4), auth data part 1 (8), filler (1), capabilities (2).
	if len(rest) < 15 {
		return fmt.Errorf("mysql: %w: short greeting", ErrUnexpected)
	}
	if rest[12] != 0 {
		return fmt.Errorf("mysql: %w: not a MySQL greeting (bad filler)", ErrUnexpected)
	}
	if caps := binary.LittleEndian.Uint16(rest[13:]); caps&mysqlProtocol41 == 0 {
		return fmt.Errorf("mysql: %w: server does not speak protocol 4.1", ErrUnexpected)
	}
	return nil
}

// parseMySQLResult checks the reply to the login: OK (0x00) passes, an
// error packet is a refusal (access denied), anything else (an
// authentication switch: the user has a password or another plugin) fails.
func parseMySQLResult(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("mysql: %w: empty reply", ErrUnexpected)
	}
	switch b[0] {
	case 0x00:
		if len(b) < 7 {
			return fmt.Errorf("mysql: %w: short OK packet", ErrUnexpected)
		}
		return nil
	case 0xff:
		return mysqlError(b)
	case 0xfe:
		return fmt.Errorf("mysql: %w: login needs another authentication method (the user must have no password)", ErrRefused)
	}
	return fmt.Errorf("mysql: %w: not a MySQL reply (header 0x%02x)", ErrUnexpected, b[0])
}

// mysqlError formats an error packet: 0xff, code (2), optional '#' and
// SQL state (5), message.
func mysqlError(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("mysql: %w: short error packet", ErrUnexpected)
	}
	code := binary.LittleEndian.Uint16(b[1:])
	msg := b[3:]
	if len(msg) >= 6 && msg[0] == '#' {
		msg = msg[6:]
	}
	return fmt.Errorf("mysql: %w: error %d: %s", ErrRefused, code, printable(msg))
}

// mysqlLogin builds a HandshakeResponse41 for user with an empty password.
func mysqlLogin(user string) []byte {
	caps := uint32(mysqlLongPassword | mysqlProtocol41 | mysqlSecureConnection)
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24) // max packet size
	b = append(b, 33)                              // utf8_general_ci
	b = append(b, make([]byte, 23)...)             // reserved
	b = append(b, user...)
	b = append(b, 0)
	b = append(b, 0) // auth response: empty
	return b
}
