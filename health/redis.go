package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Redis checks a Redis (or Valkey, KeyDB) server: PING must be answered with
// +PONG. With Password, AUTH (with Username when set, Redis 6 ACLs) comes
// first and must be answered +OK.
type Redis struct {
	Username, Password string
}

// maxRedisLine bounds a Redis reply line.
const maxRedisLine = 512

// Check implements Probe.
func (p Redis) Check(ctx context.Context, t Target) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer closeQuietly(c, []byte(respCommand("QUIT")))
	r := newReader(c)
	if p.Password != "" {
		cmd := respCommand("AUTH", p.Password)
		if p.Username != "" {
			cmd = respCommand("AUTH", p.Username, p.Password)
		}
		if _, err := c.Write([]byte(cmd)); err != nil {
			return fmt.Errorf("redis: send AUTH: %w", err)
		}
		if err := expectRedis(r, "OK", "AUTH"); err != nil {
			return err
		}
	}
	if _, err := c.Write([]byte(respCommand("PING"))); err != nil {
		return fmt.Errorf("redis: send PING: %w", err)
	}
	return expectRedis(r, "PONG", "PING")
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}

func expectRedis(r *bufio.Reader, want, cmd string) error {
	line, err := readLine(r, maxRedisLine)
	if errors.Is(err, ErrUnexpected) {
		return fmt.Errorf("redis: %s: not a Redis reply: %w", cmd, err)
	}
	if err != nil {
		return fmt.Errorf("redis: %s: %w", cmd, readErr(err))
	}
	return parseRedisReply(line, want, cmd)
}

// parseRedisReply checks one RESP reply line (without CRLF): "+"+want is
// the only success; "-ERR ..." is a refusal; anything else is not Redis.
func parseRedisReply(line []byte, want, cmd string) error {
	if len(line) == 0 {
		return fmt.Errorf("redis: %s: %w: empty line", cmd, ErrUnexpected)
	}
	switch line[0] {
	case '+':
		if string(line[1:]) == want {
			return nil
		}
		return fmt.Errorf("redis: %s: %w: got +%s, want +%s", cmd, ErrUnexpected, printable(line[1:]), want)
	case '-':
		return fmt.Errorf("redis: %s: %w: %s", cmd, ErrRefused, printable(line[1:]))
	}
	return fmt.Errorf("redis: %s: %w: not a Redis reply: %q", cmd, ErrUnexpected, printable(line))
}

// readLine reads one CRLF-terminated line of at most max bytes, without its
// CRLF. A longer line or a bare LF is an error.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			if len(line) == 0 || line[len(line)-1] != '\r' {
				return nil, fmt.Errorf("%w: line not ended by CRLF", ErrUnexpected)
			}
			return line[:len(line)-1], nil
		}
		if len(line) >= max {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrUnexpected, max)
		}
		line = append(line, b)
	}
}

// printable quotes at most 120 bytes of b for an error message.
func printable(b []byte) string {
	const max = 120
	s := strconv.QuoteToASCII(string(b[:min(len(b), max)]))
	s = s[1 : len(s)-1]
	if len(b) > max {
		s += "..."
	}
	return s
}
