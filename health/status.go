package health

import (
	"context"
	"errors"
	"net"
)

// statusError is the error of an HTTP check that got a status outside the
// expected range; it wraps ErrRefused and carries the status for
// lb.CheckResult.Code.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return ErrRefused }

// HandshakeError marks err as the failure of a check's TLS handshake, for
// probes written outside this package: the check's status (lb.CheckResult)
// is then L6RSP, or L6TOUT when the check timed out, as for the built-in
// probes. The result wraps err; a nil err gives nil.
func HandshakeError(err error) error {
	if err == nil {
		return nil
	}
	return &handshakeError{err}
}

// handshakeError is the error of a failed TLS handshake of a check.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// checkStatus names the result of a check of probe as HAProxy's
// check_status does, with the response code when there is one: L4OK for a
// plain TCP connect, L7OK for other passed checks; L4CON and L4TOUT when
// the connection failed or timed out, L6TOUT and L6RSP when the TLS
// handshake timed out or failed, L7TOUT when the reply timed out,
// L7STS when the server refused the check (an HTTP status out of range, an
// error reply), L7RSP for a reply that is not the protocol's, SOCKERR for
// other socket errors. timedOut reports that the check's deadline passed.
func checkStatus(probe Probe, err error, timedOut bool) (string, int) {
	var se *statusError
	var he *handshakeError
	var op *net.OpError
	var ne net.Error
	dial := errors.As(err, &op) && op.Op == "dial"
	timeout := timedOut || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
	switch {
	case err == nil:
		if p, ok := probe.(TCP); ok && len(p.Send) == 0 && len(p.Expect) == 0 && p.TLS == nil {
			return "L4OK", 0
		}
		return "L7OK", 0
	case errors.As(err, &se):
		return "L7STS", se.code
	case dial && timeout:
		return "L4TOUT", 0
	case dial:
		return "L4CON", 0
	case errors.As(err, &he) && timeout:
		return "L6TOUT", 0
	case errors.As(err, &he):
		return "L6RSP", 0
	case timeout:
		return "L7TOUT", 0
	case errors.Is(err, ErrRefused):
		return "L7STS", 0
	case errors.Is(err, ErrUnexpected):
		return "L7RSP", 0
	}
	return "SOCKERR", 0
}
