package accesslog

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// HAProxy returns a Sink that writes each record to w as one line of
// HAProxy's log format: "option httplog" for HTTP records, "option tcplog"
// for L4 sessions (see AppendHAProxy). Lines are buffered and written to w
// once per batch of records, except to a *SyslogWriter, which gets one
// Write (one message) per record. Closing the sink (Writer.Close does)
// closes w when it is an io.Closer.
func HAProxy(w io.Writer) Sink {
	s := &textSink{w: w, out: w}
	if _, ok := w.(*SyslogWriter); !ok {
		s.bw = bufio.NewWriterSize(w, 64<<10)
		s.out = s.bw
	}
	return s
}

type textSink struct {
	w   io.Writer
	bw  *bufio.Writer // nil for a SyslogWriter
	out io.Writer     // bw or w
	buf []byte
}

func (s *textSink) WriteRecord(r *lb.AccessRecord) error {
	s.buf = append(AppendHAProxy(s.buf[:0], r), '\n')
	_, err := s.out.Write(s.buf)
	return err
}

// Flush writes the buffered lines.
func (s *textSink) Flush() error {
	if s.bw == nil {
		return nil
	}
	return s.bw.Flush()
}

// Close flushes, then closes w when it is an io.Closer.
func (s *textSink) Close() error {
	err := s.Flush()
	if c, ok := s.w.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

// AppendHAProxy appends r to dst in HAProxy's log format, without a
// newline. HTTP records ("option httplog"):
//
//	127.0.0.1:41234 [02/Dec/2026:09:53:16.123] web app/s1 0/0/1/2/3 200 1234 - - ---- 5/5/0/1/0 0/0 "GET /x HTTP/1.1"
//
// are client address, accept date, frontend, backend/server,
// TR/Tw/Tc/Tr/Ta in milliseconds, status, bytes sent to the client,
// captured request and response cookies (none: "-"), the termination state
// and the two cookie flags, actconn/feconn/beconn/srv_conn/retries ("+"
// before retries when redispatched), srv_queue/backend_queue, and the
// request line. The cookie flags are "VN" when Affinity chose the server
// (a valid pin, no new cookie), "DI" when the client's pin named a server
// that could not be used (down, draining or removed) so the request went
// to another one and the client was re-pinned (a cookie inserted), and
// "--" otherwise. The counts are the record's ActiveConns, FrontendConns,
// BackendConns, ServerConns, ServerQueue and BackendQueue: actconn is
// feconn, as lbkit keeps no process-wide count, and feconn is 0 at L7
// unless the ReverseProxy's ConnState hook is set. L4 records ("option
// tcplog") end after the queues and have Tw/Tc/Tt, no status, and a
// two-letter termination state (no cookie flags: the record's StickyMoved
// says whether a source-address pin was moved).
func AppendHAProxy(dst []byte, r *lb.AccessRecord) []byte {
	ip := r.Client.Addr()
	if ip.Is6() {
		dst = append(dst, '[')
		dst = ip.AppendTo(dst)
		dst = append(dst, ']')
	} else {
		dst = ip.AppendTo(dst)
	}
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(r.Client.Port()), 10)
	dst = append(dst, " ["...)
	dst = r.Time.AppendFormat(dst, "02/Jan/2006:15:04:05.000")
	dst = append(dst, "] "...)
	dst = appendName(dst, r.Frontend)
	dst = append(dst, ' ')
	dst = appendName(dst, r.Backend)
	dst = append(dst, '/')
	dst = appendName(dst, r.Server)
	dst = append(dst, ' ')
	if r.HTTP {
		dst = appendTimers(dst, r.TR, r.Tw, r.Tc, r.Tr, r.Ta)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	} else {
		dst = appendTimers(dst, r.Tw, r.Tc, r.Tt)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, r.BytesOut, 10)
	dst = append(dst, ' ')
	if r.HTTP {
		dst = append(dst, "- - "...)
	}
	term := r.Termination
	if len(term) != 2 {
		term = "--"
	}
	dst = append(dst, term...)
	if r.HTTP {
		switch {
		case r.StickyPinned:
			dst = append(dst, "VN"...)
		case r.StickyMoved:
			dst = append(dst, "DI"...)
		default:
			dst = append(dst, "--"...)
		}
	}
	dst = append(dst, ' ')
	dst = appendCounts(dst, r.ActiveConns, r.FrontendConns, r.BackendConns, r.ServerConns)
	dst = append(dst, '/')
	if r.Redispatch {
		dst = append(dst, '+')
	}
	dst = strconv.AppendInt(dst, int64(r.Retries), 10)
	dst = append(dst, ' ')
	dst = appendCounts(dst, r.ServerQueue, r.BackendQueue)
	if r.HTTP {
		dst = append(dst, ` "`...)
		dst = appendEscaped(dst, r.Method)
		dst = append(dst, ' ')
		dst = appendEscaped(dst, r.URI)
		dst = append(dst, ' ')
		dst = appendEscaped(dst, r.Proto)
		dst = append(dst, '"')
	}
	return dst
}

// appendTimers appends durations in milliseconds separated by slashes, -1
// for phases not reached.
func appendTimers(dst []byte, ds ...time.Duration) []byte {
	for i, d := range ds {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = strconv.AppendInt(dst, ms(d), 10)
	}
	return dst
}

// appendCounts appends counts separated by slashes.
func appendCounts(dst []byte, ns ...int64) []byte {
	for i, n := range ns {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = strconv.AppendInt(dst, n, 10)
	}
	return dst
}

// appendName appends a name as one field: "-" when empty, spaces and
// control characters escaped.
func appendName(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return appendEscaped(dst, s)
}

const hexDigits = "0123456789ABCDEF"

// appendEscaped appends s with spaces, quotes, '#' and bytes outside
// printable ASCII written as #XX, as HAProxy encodes its log fields.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '#' {
			dst = append(dst, '#', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
