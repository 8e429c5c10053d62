package tlsmode

import "errors"

// Errors of the package. Functions wrap them with details; test with
// errors.Is.
var (
	// ErrNotTLS means a connection did not start with a TLS handshake
	// record.
	ErrNotTLS = errors.New("tlsmode: not a TLS handshake")
	// ErrClientHello means the ClientHello could not be parsed.
	ErrClientHello = errors.New("tlsmode: malformed ClientHello")
	// ErrNoCertificate means the store has no certificate for a name and no
	// default.
	ErrNoCertificate = errors.New("tlsmode: no certificate")
	// ErrUnknownProfile means a profile name is not old, intermediate or
	// modern.
	ErrUnknownProfile = errors.New("tlsmode: unknown profile")
	// ErrPEM means a PEM file holds no usable certificate or key.
	ErrPEM = errors.New("tlsmode: bad PEM")
)
