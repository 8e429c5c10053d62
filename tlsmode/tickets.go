package tlsmode

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Session ticket defaults.
const (
	// DefaultTicketRotation is how often TicketKeys makes a new key when
	// Rotation is zero: daily, as crypto/tls does for its own keys.
	DefaultTicketRotation = 24 * time.Hour
	// MaxTicketLifetime is the longest a ticket key lives, and the default
	// Lifetime: seven days, which is also the most crypto/tls accepts for
	// the age of a ticket.
	MaxTicketLifetime = 7 * 24 * time.Hour
)

// TicketKeys is a set of TLS session ticket keys shared by every
// *tls.Config registered with it, and by their clones (http.Server clones
// its TLSConfig), so a session begun on one frontend or listener of the
// process resumes on any other. Set the fields before the
// first Register or Rotate; it is then safe for concurrent use.
//
// crypto/tls already makes its own ticket keys, rotated daily and kept
// seven days, but those belong to one *tls.Config: frontends built from
// separate configs (HTTPS and TLS listeners, one config per reload) cannot
// resume each other's sessions. TicketKeys adds the sharing, an explicit
// Lifetime, and rotation on the caller's schedule (Run, or Rotate called
// directly) with an injectable clock, which makes it deterministic in
// tests. Once registered, a config seals its tickets with these keys only
// (through its WrapSession and UnwrapSession hooks), so run Run for as
// long as the configs serve.
//
// The newest key encrypts new tickets; it and the older keys decrypt
// them. Each rotation drops the keys that would pass Lifetime before the
// next one, so a key encrypts for Rotation, then only decrypts, and is
// gone by Lifetime after its creation: with rotations on time a ticket
// resumes for at most Lifetime, and for at least Lifetime-Rotation when
// Lifetime is a multiple of Rotation, as with the defaults (crypto/tls
// also refuses tickets older than seven days).
//
// # Across instances
//
// With Secret set, the keys are not random: each is derived from Secret
// and its period (HKDF-SHA256 over the secret, with the period's number,
// Unix time divided by Rotation, in the info), and rotations happen at the
// period boundaries, the same instants everywhere. Load balancers that
// share Secret and Rotation (and Lifetime) therefore hold the same keys
// without talking to each other: a session begun on one resumes on any
// other, and survives a failover or a restart. The key of the next period
// is accepted too, so instances whose clocks differ by less than Rotation
// still agree across a boundary. Secret is as sensitive as a private key:
// whoever holds it decrypts recorded TLS 1.2 sessions, and resumes
// sessions as their clients.
type TicketKeys struct {
	// Rotation is how often Run makes a new key; zero means
	// DefaultTicketRotation.
	Rotation time.Duration
	// Lifetime is how long a key decrypts after its creation; zero, or
	// more than MaxTicketLifetime, means MaxTicketLifetime, and less than
	// Rotation means Rotation (previous keys are then never accepted).
	Lifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Secret, when set, derives the keys from it and the time instead of
	// crypto/rand, so that instances sharing it share their keys (see
	// "Across instances"); at least MinTicketSecret bytes, 32 random bytes
	// being the recommended size. Nil means random keys of this process
	// alone. A shorter non-empty Secret is refused: Register returns
	// ErrTicketSecret and disables tickets on the config, and Rotate and
	// Run make no key, rather than falling back to keys that other
	// instances do not share.
	Secret []byte

	mu     sync.Mutex
	keys   []ticketKey // newest first
	sealer *tls.Config // holds the keys; encrypts and decrypts tickets
}

// MinTicketSecret is the shortest TicketKeys.Secret accepted.
const MinTicketSecret = 16

// ErrTicketSecret means a TicketKeys.Secret is too short.
var ErrTicketSecret = errors.New("tlsmode: session ticket secret too short")

// Validate reports a Secret shorter than MinTicketSecret (an empty one
// means random keys, and is valid). Register returns the same error, and
// Rotate and Run do nothing, with such a secret.
func (k *TicketKeys) Validate() error {
	if n := len(k.Secret); n > 0 && n < MinTicketSecret {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrTicketSecret, n, MinTicketSecret)
	}
	return nil
}

// ticketInfo is HKDF's info for the key of a period, before its number.
const ticketInfo = "lbkit tlsmode session ticket key v1 "

// derived returns the key of period p derived from Secret.
func (k *TicketKeys) derived(p int64) ticketKey {
	info := make([]byte, len(ticketInfo)+8)
	copy(info, ticketInfo)
	binary.BigEndian.PutUint64(info[len(ticketInfo):], uint64(p))
	key, err := hkdf.Key(sha256.New, k.Secret, nil, string(info), 32)
	if err != nil { // only for lengths beyond 255 hashes
		panic(err)
	}
	tk := ticketKey{created: time.Unix(0, 0).Add(time.Duration(p) * k.rotation())}
	copy(tk.key[:], key)
	return tk
}

type ticketKey struct {
	key     [32]byte
	created time.Time
}

// Register makes c use the shared keys: it sets c.WrapSession and
// c.UnwrapSession, replacing any earlier hooks, and makes the first key
// when there is none and a new one when the newest is older than
// Rotation. TicketKeys keeps no reference to c.
//
// With a Secret shorter than MinTicketSecret, Register returns an error
// wrapping ErrTicketSecret and sets c.SessionTicketsDisabled instead: c
// then issues no tickets, rather than tickets other instances cannot
// open.
func (k *TicketKeys) Register(c *tls.Config) error {
	if err := k.Validate(); err != nil {
		c.SessionTicketsDisabled = true
		c.WrapSession, c.UnwrapSession = nil, nil
		return err
	}
	k.mu.Lock()
	if len(k.keys) == 0 || k.now().Sub(k.keys[0].created) >= k.rotation() {
		k.rotateLocked()
	}
	sealer := k.sealer
	k.mu.Unlock()
	// The sealer's own lock guards its keys; Rotate replaces them there.
	c.WrapSession = sealer.EncryptTicket
	c.UnwrapSession = sealer.DecryptTicket
	return nil
}

// Rotate makes the key that encrypts new tickets and drops the keys that
// would pass Lifetime before the next rotation, for every registered
// config at once. Without Secret the new key comes from crypto/rand; with
// Secret it is the current period's key derived from Secret (the same on
// every instance, and unchanged when the period has not changed). With a
// Secret shorter than MinTicketSecret, Rotate does nothing.
func (k *TicketKeys) Rotate() {
	if k.Validate() != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotateLocked()
}

// Run calls Rotate whenever the newest key is Rotation old, until ctx is
// done. Start it once per TicketKeys, for as long as the registered
// configs serve. With a Secret shorter than MinTicketSecret, Run returns
// at once (Register refuses such a secret).
func (k *TicketKeys) Run(ctx context.Context) {
	if k.Validate() != nil {
		return
	}
	for {
		k.mu.Lock()
		if len(k.keys) == 0 {
			k.rotateLocked()
		}
		wait := k.rotation() - k.now().Sub(k.keys[0].created)
		k.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		k.mu.Lock()
		if k.now().Sub(k.keys[0].created) >= k.rotation() {
			k.rotateLocked()
		}
		k.mu.Unlock()
	}
}

// Len returns how many keys are kept: the one that encrypts and those that
// still decrypt.
func (k *TicketKeys) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}

func (k *TicketKeys) rotateLocked() {
	now := k.now()
	var kept []ticketKey
	var next []ticketKey // accepted, not kept: the next period's
	if len(k.Secret) > 0 {
		// The current period's key, and those of the previous periods
		// within Lifetime: the same on every instance.
		rot := int64(k.rotation())
		p := now.UnixNano() / rot
		if now.UnixNano() < 0 && now.UnixNano()%rot != 0 {
			p--
		}
		for q := p; ; q-- {
			tk := k.derived(q)
			if q != p && now.Sub(tk.created)+k.rotation() > k.lifetime() {
				break
			}
			kept = append(kept, tk)
		}
		next = append(next, k.derived(p+1))
	} else {
		var nk ticketKey
		rand.Read(nk.key[:]) // never fails (crypto/rand)
		nk.created = now
		kept = []ticketKey{nk}
		for _, old := range k.keys {
			if now.Sub(old.created)+k.rotation() <= k.lifetime() {
				kept = append(kept, old)
			}
		}
	}
	k.keys = kept
	keys := make([][32]byte, 0, len(kept)+len(next))
	for _, tk := range kept {
		keys = append(keys, tk.key)
	}
	for _, tk := range next {
		keys = append(keys, tk.key)
	}
	if k.sealer == nil {
		k.sealer = &tls.Config{}
	}
	k.sealer.SetSessionTicketKeys(keys)
}

func (k *TicketKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *TicketKeys) rotation() time.Duration {
	if k.Rotation > 0 {
		return k.Rotation
	}
	return DefaultTicketRotation
}

func (k *TicketKeys) lifetime() time.Duration {
	l := k.Lifetime
	if l <= 0 || l > MaxTicketLifetime {
		l = MaxTicketLifetime
	}
	return max(l, k.rotation())
}
