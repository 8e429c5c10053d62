package tlsmode

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// Profile is a set of TLS versions, cipher suites and key exchange groups,
// after Mozilla's server-side TLS guidelines
// (https://wiki.mozilla.org/Security/Server_Side_TLS, version 5.7). The zero
// value is Intermediate.
//
// crypto/tls does not implement the DHE suites and lets TLS 1.3 suites be
// configured only by the library; within those limits each profile matches
// the guideline: Old allows TLS 1.0 and the legacy CBC, RSA key exchange
// and 3DES suites old clients need; Intermediate TLS 1.2 with AEAD and
// forward secrecy, and TLS 1.3; Modern TLS 1.3 only.
type Profile int

// The profiles.
const (
	Intermediate Profile = iota
	Old
	Modern
)

// String returns "intermediate", "old" or "modern".
func (p Profile) String() string {
	switch p {
	case Intermediate:
		return "intermediate"
	case Old:
		return "old"
	case Modern:
		return "modern"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// ParseProfile returns the profile named s ("old", "intermediate",
// "modern", any case); an empty s is Intermediate.
func ParseProfile(s string) (Profile, error) {
	switch strings.ToLower(s) {
	case "", "intermediate":
		return Intermediate, nil
	case "old":
		return Old, nil
	case "modern":
		return Modern, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownProfile, s)
}

// TLS 1.2 suites of the intermediate profile, in Mozilla's order.
var intermediateSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Suites the old profile adds, in Mozilla's order.
var oldExtraSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// Groups of every profile: the post-quantum hybrid first when the peer
// offers it, then Mozilla's X25519, prime256v1, secp384r1.
var profileCurves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}

// Apply sets the versions, cipher suites and curves of the profile on c.
func (p Profile) Apply(c *tls.Config) {
	c.CurvePreferences = append([]tls.CurveID(nil), profileCurves...)
	c.MaxVersion = tls.VersionTLS13
	switch p {
	case Old:
		c.MinVersion = tls.VersionTLS10
		c.CipherSuites = append(append([]uint16(nil), intermediateSuites...), oldExtraSuites...)
	case Modern:
		c.MinVersion = tls.VersionTLS13
		c.CipherSuites = nil
	default:
		c.MinVersion = tls.VersionTLS12
		c.CipherSuites = append([]uint16(nil), intermediateSuites...)
	}
}
