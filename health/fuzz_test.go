package health

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Every parser of server replies: no panic, and a verdict of success only
// for input that is valid for the protocol.

func FuzzParseRedisReply(f *testing.F) {
	for _, s := range []string{"+PONG\r\n", "+OK\r\n", "-ERR unknown command\r\n", "-NOAUTH Authentication required.\r\n", "$4\r\nPONG\r\n", "PONG\n", "+PONG", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		line, err := readLine(bufio.NewReader(bytes.NewReader(b)), maxRedisLine)
		if err != nil {
			return
		}
		if len(line) > maxRedisLine {
			t.Fatalf("line of %d bytes", len(line))
		}
		if err := parseRedisReply(line, "PONG", "PING"); err == nil && !bytes.HasPrefix(b, []byte("+PONG\r\n")) {
			t.Fatalf("%q accepted", b)
		}
	})
}

func pgMessage(typ byte, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{typ}, uint32(4+len(body))), body...)
}

func FuzzParsePGReply(f *testing.F) {
	f.Add(pgMessage('R', []byte{0, 0, 0, 0}))
	f.Add(pgMessage('R', []byte{0, 0, 0, 10, 'S', 'C', 'R', 'A', 'M', 0, 0}))
	f.Add(pgMessage('E', []byte("SFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry\x00\x00")))
	f.Add(pgMessage('E', []byte("SFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00")))
	f.Add(pgMessage('E', []byte("Mno severity\x00\x00")))
	f.Add([]byte("-ERR unknown command\r\n"))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parsePGReply(b)
		if err == nil && (len(b) < 9 || (b[0] != 'R' && b[0] != 'E')) {
			t.Fatalf("%q accepted", b)
		}
		if err != nil && !errors.Is(err, ErrUnexpected) && !errors.Is(err, ErrRefused) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzParseMySQLGreeting(f *testing.F) {
	greeting := append([]byte{10}, "10.11.6-MariaDB\x00"...)
	greeting = append(greeting, 1, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0, 0xff, 0xf7, 8, 2, 0)
	f.Add(greeting)
	f.Add([]byte("\xff\x69\x04#HY000Host is blocked"))
	f.Add([]byte("\xff\x10\x04Too many connections"))
	f.Add([]byte("HTTP/1.1 400"))
	f.Add([]byte{10, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parseMySQLGreeting(b)
		if err == nil && (len(b) < 18 || b[0] != 10) {
			t.Fatalf("%q accepted", b)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "mysql: ") {
			t.Fatalf("error %v", err)
		}
	})
}

func FuzzParseMySQLResult(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0})
	f.Add([]byte("\xff\x15\x04#28000Access denied for user 'x'@'127.0.0.1'"))
	f.Add([]byte("\xfemysql_native_password\x00abcdefgh"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := parseMySQLResult(b); err == nil && (len(b) < 7 || b[0] != 0) {
			t.Fatalf("%q accepted", b)
		}
	})
}

func FuzzParseLDAPBindResponse(f *testing.F) {
	f.Add([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00})
	f.Add([]byte{0x30, 0x84, 0, 0, 0, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x31, 0x04, 0x00, 0x04, 0x00})
	f.Add([]byte{0x30, 0x0e, 0x02, 0x01, 0x01, 0x61, 0x09, 0x0a, 0x01, 0x31, 0x04, 0x00, 0x04, 0x02, 'n', 'o'})
	f.Add([]byte{0x30, 0x05, 0x02, 0x01, 0x00, 0x78, 0x00})
	f.Add([]byte("HTTP/1.1 400"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := parseLDAPBindResponse(b)
		if err == nil && (len(b) < 10 || b[0] != 0x30) {
			t.Fatalf("%q accepted", b)
		}
	})
}

func FuzzReadHTTPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.0 503 Service Unavailable\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
	f.Add([]byte("+PONG\r\n"))
	f.Add([]byte("HTTP/9 x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := HTTP{Body: "ok"}
		err := p.checkResponse(bufio.NewReader(bytes.NewReader(b)), "http")
		if err == nil && !bytes.HasPrefix(b, []byte("HTTP/")) {
			t.Fatalf("%q accepted", b)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"200", "200-399", "500-", "-", "99", "600", "2xx", "399-200"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseStatus(s)
		if err != nil {
			return
		}
		if r[0] < 100 || r[1] > 599 || r[0] > r[1] {
			t.Fatalf("%q parsed as %v", s, r)
		}
	})
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [2]int
		ok   bool
	}{
		{"200", [2]int{200, 200}, true},
		{"200-399", [2]int{200, 399}, true},
		{"399-200", [2]int{}, false},
		{"2xx", [2]int{}, false},
		{"600", [2]int{}, false},
		{"", [2]int{}, false},
	} {
		got, err := ParseStatus(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStatus(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestMySQLLoginPacket(t *testing.T) {
	b := mysqlLogin("check")
	caps := binary.LittleEndian.Uint32(b)
	if caps&mysqlProtocol41 == 0 || caps&mysqlSecureConnection == 0 {
		t.Fatalf("capabilities %#x", caps)
	}
	if got := string(b[32:]); got != "check\x00\x00" {
		t.Fatalf("user and auth %q", got)
	}
}

func TestPGStartupPacket(t *testing.T) {
	b := pgStartup("u", "")
	if n := binary.BigEndian.Uint32(b); int(n) != len(b) {
		t.Fatalf("length %d of %d bytes", n, len(b))
	}
	if !bytes.Contains(b, []byte("user\x00u\x00database\x00u\x00")) || b[len(b)-1] != 0 {
		t.Fatalf("startup %q", b)
	}
}
