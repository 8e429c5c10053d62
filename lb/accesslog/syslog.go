package accesslog

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Syslog formats.
const (
	// RFC5424 is "<PRI>1 TIMESTAMP HOST APP PID - - MSG", HAProxy's
	// "format rfc5424".
	RFC5424 = "rfc5424"
	// RFC3164 is "<PRI>Mmm dd hh:mm:ss HOST APP[PID]: MSG", the BSD format
	// HAProxy sends by default.
	RFC3164 = "rfc3164"
)

// SyslogOptions configures a SyslogWriter. The zero value sends RFC 5424
// messages from facility local0 at level info, as HAProxy's "log
// 127.0.0.1 local0 info" does.
type SyslogOptions struct {
	// Format is RFC5424 (the default when empty) or RFC3164.
	Format string
	// Facility is the syslog facility, 1 to 23; zero means local0 (16).
	Facility int
	// Severity is the syslog severity, 1 to 7; zero means info (6).
	Severity int
	// Hostname and App name the sender; empty means os.Hostname() and
	// "lbkit".
	Hostname, App string
	// Timeout bounds each write; zero means 5 s.
	Timeout time.Duration
}

// SyslogWriter is an io.Writer that sends each Write as one syslog message
// over UDP (one datagram each) or TCP (octet-counted frames, RFC 6587, for
// RFC 5424; newline-terminated for RFC 3164). A TCP connection that fails
// is dialed again on the next Write. It is safe for concurrent use.
type SyslogWriter struct {
	network, addr string
	opt           SyslogOptions
	pri           string
	pid           string

	mu   sync.Mutex
	conn net.Conn
	buf  []byte
}

// DialSyslog returns a SyslogWriter to the syslog server at addr over
// network ("udp", "udp4", "udp6", "tcp", ...), after a first connection.
func DialSyslog(network, addr string, opt SyslogOptions) (*SyslogWriter, error) {
	switch opt.Format {
	case "":
		opt.Format = RFC5424
	case RFC5424, RFC3164:
	default:
		return nil, fmt.Errorf("accesslog: unknown syslog format %q", opt.Format)
	}
	if opt.Facility == 0 {
		opt.Facility = 16
	}
	if opt.Severity == 0 {
		opt.Severity = 6
	}
	if opt.Facility < 0 || opt.Facility > 23 || opt.Severity < 0 || opt.Severity > 7 {
		return nil, fmt.Errorf("accesslog: syslog facility %d or severity %d out of range", opt.Facility, opt.Severity)
	}
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
		if opt.Hostname == "" {
			opt.Hostname = "-"
		}
	}
	if opt.App == "" {
		opt.App = "lbkit"
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	w := &SyslogWriter{network: network, addr: addr, opt: opt,
		pri: "<" + strconv.Itoa(opt.Facility*8+opt.Severity) + ">",
		pid: strconv.Itoa(os.Getpid())}
	c, err := net.DialTimeout(network, addr, opt.Timeout)
	if err != nil {
		return nil, fmt.Errorf("accesslog: syslog: %w", err)
	}
	w.conn = c
	return w, nil
}

// Write sends p, without its trailing newline, as one message.
func (w *SyslogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := p
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.buf = w.appendMessage(w.buf[:0], msg, time.Now())
	if w.conn == nil {
		c, err := net.DialTimeout(w.network, w.addr, w.opt.Timeout)
		if err != nil {
			return 0, fmt.Errorf("accesslog: syslog: %w", err)
		}
		w.conn = c
	}
	w.conn.SetWriteDeadline(time.Now().Add(w.opt.Timeout))
	if _, err := w.conn.Write(w.buf); err != nil {
		if !w.datagram() {
			w.conn.Close()
			w.conn = nil
		}
		return 0, fmt.Errorf("accesslog: syslog: %w", err)
	}
	return len(p), nil
}

func (w *SyslogWriter) datagram() bool {
	switch w.network {
	case "udp", "udp4", "udp6", "unixgram":
		return true
	}
	return false
}

// appendMessage appends the framed message msg sent at t.
func (w *SyslogWriter) appendMessage(dst, msg []byte, t time.Time) []byte {
	start := len(dst)
	dst = append(dst, w.pri...)
	if w.opt.Format == RFC3164 {
		dst = t.AppendFormat(dst, time.Stamp)
		dst = append(dst, ' ')
		dst = append(dst, w.opt.Hostname...)
		dst = append(dst, ' ')
		dst = append(dst, w.opt.App...)
		dst = append(dst, '[')
		dst = append(dst, w.pid...)
		dst = append(dst, "]: "...)
		dst = append(dst, msg...)
		if !w.datagram() {
			dst = append(dst, '\n')
		}
		return dst
	}
	dst = append(dst, "1 "...)
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, ' ')
	dst = append(dst, w.opt.Hostname...)
	dst = append(dst, ' ')
	dst = append(dst, w.opt.App...)
	dst = append(dst, ' ')
	dst = append(dst, w.pid...)
	dst = append(dst, " - - "...)
	dst = append(dst, msg...)
	if !w.datagram() {
		// RFC 6587 octet counting: "LEN SP MSG".
		n := len(dst) - start
		frame := strconv.AppendInt(nil, int64(n), 10)
		frame = append(frame, ' ')
		dst = append(dst[:start], append(frame, dst[start:]...)...)
	}
	return dst
}

// Close closes the connection.
func (w *SyslogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}
