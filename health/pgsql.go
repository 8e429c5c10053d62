package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// PostgreSQL checks a PostgreSQL server: it sends a StartupMessage for User
// (and Database, which defaults to User) and expects an authentication
// request or an error response. Both mean a PostgreSQL server is running and
// answering (an error such as "no pg_hba.conf entry" still proves it alive);
// the probe never logs in. It then sends Terminate and closes.
type PostgreSQL struct {
	User     string // required by the protocol; empty means "postgres"
	Database string
}

// maxPGMessage bounds the first message read from the server.
const maxPGMessage = 8 << 10

// Check implements Probe.
func (p PostgreSQL) Check(ctx context.Context, t Target) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("pgsql: %w", err)
	}
	defer closeQuietly(c, []byte{'X', 0, 0, 0, 4})
	if _, err := c.Write(pgStartup(p.User, p.Database)); err != nil {
		return fmt.Errorf("pgsql: send startup: %w", err)
	}
	var head [5]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return fmt.Errorf("pgsql: %w", readErr(err))
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n < 4 || n > maxPGMessage {
		return fmt.Errorf("pgsql: %w: not a PostgreSQL message (type %q, length %d)", ErrUnexpected, printable(head[:1]), n)
	}
	msg := make([]byte, 5+int(n)-4)
	copy(msg, head[:])
	if _, err := io.ReadFull(c, msg[5:]); err != nil {
		return fmt.Errorf("pgsql: %w", readErr(err))
	}
	return parsePGReply(msg)
}

// pgStartup builds a protocol 3.0 StartupMessage.
func pgStartup(user, db string) []byte {
	if user == "" {
		user = "postgres"
	}
	if db == "" {
		db = user
	}
	body := []byte{0, 3, 0, 0}
	for _, kv := range [][2]string{{"user", user}, {"database", db}, {"application_name", "lbkit-health"}} {
		body = append(body, kv[0]...)
		body = append(body, 0)
		body = append(body, kv[1]...)
		body = append(body, 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), body...)
}

// parsePGReply checks the server's first message (type byte, length,
// body): an AuthenticationRequest ('R', a known code) or an ErrorResponse
// ('E', well-formed fields with a severity) mean alive.
func parsePGReply(msg []byte) error {
	if len(msg) < 5 {
		return fmt.Errorf("pgsql: %w: short message", ErrUnexpected)
	}
	n := binary.BigEndian.Uint32(msg[1:5])
	if int(n) != len(msg)-1 {
		return fmt.Errorf("pgsql: %w: length %d does not match message", ErrUnexpected, n)
	}
	body := msg[5:]
	switch msg[0] {
	case 'R':
		if len(body) < 4 {
			return fmt.Errorf("pgsql: %w: short authentication request", ErrUnexpected)
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case 0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12: // ok, kerberos, cleartext, md5, scm, gss, gss-cont, sspi, sasl, sasl-cont, sasl-final
			return nil
		}
		return fmt.Errorf("pgsql: %w: unknown authentication request %d", ErrUnexpected, code)
	case 'E':
		fields, err := parsePGFields(body)
		if err != nil {
			return err
		}
		if fields['S'] == "" && fields['V'] == "" {
			return fmt.Errorf("pgsql: %w: error response without severity", ErrUnexpected)
		}
		if fields['C'] == "57P03" { // cannot_connect_now: starting up, shutting down, recovering
			return fmt.Errorf("pgsql: %w: %s", ErrRefused, fields['M'])
		}
		return nil
	}
	return fmt.Errorf("pgsql: %w: not a PostgreSQL reply (message type %q)", ErrUnexpected, printable(msg[:1]))
}

// parsePGFields parses the fields of an ErrorResponse: (code byte, C
// string)* then a zero byte.
func parsePGFields(b []byte) (map[byte]string, error) {
	fields := make(map[byte]string)
	for {
		if len(b) == 0 {
			return nil, fmt.Errorf("pgsql: %w: unterminated error response", ErrUnexpected)
		}
		code := b[0]
		b = b[1:]
		if code == 0 {
			if len(b) != 0 {
				return nil, fmt.Errorf("pgsql: %w: bytes after error response", ErrUnexpected)
			}
			return fields, nil
		}
		end := strings.IndexByte(string(b), 0)
		if end < 0 {
			return nil, fmt.Errorf("pgsql: %w: unterminated error field", ErrUnexpected)
		}
		fields[code] = string(b[:end])
		b = b[end+1:]
	}
}
