package tlsmode

import (
	"context"
	"crypto/rand"
	"crypto/tls"
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

	mu     sync.Mutex
	keys   []ticketKey // newest first
	sealer *tls.Config // holds the keys; encrypts and decrypts tickets
}

type ticketKey struct {
	key     [32]byte
	created time.Time
}

// Register makes c use the shared keys: it sets c.WrapSession and
// c.UnwrapSession, replacing any earlier hooks, and makes the first key
// when there is none and a new one when the newest is older than
// Rotation. TicketKeys keeps no reference to c.
func (k *TicketKeys) Register(c *tls.Config) {
	k.mu.Lock()
	if len(k.keys) == 0 || k.now().Sub(k.keys[0].created) >= k.rotation() {
		k.rotateLocked()
	}
	sealer := k.sealer
	k.mu.Unlock()
	// The sealer's own lock guards its keys; Rotate replaces them there.
	c.WrapSession = sealer.EncryptTicket
	c.UnwrapSession = sealer.DecryptTicket
}

// Rotate makes a new key from crypto/rand for new tickets and drops the
// keys that would pass Lifetime before the next rotation, for every
// registered config at once.
func (k *TicketKeys) Rotate() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotateLocked()
}

// Run calls Rotate whenever the newest key is Rotation old, until ctx is
// done. Start it once per TicketKeys, for as long as the registered
// configs serve.
func (k *TicketKeys) Run(ctx context.Context) {
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
	var nk ticketKey
	rand.Read(nk.key[:]) // never fails (crypto/rand)
	nk.created = now
	kept := []ticketKey{nk}
	for _, old := range k.keys {
		if now.Sub(old.created)+k.rotation() <= k.lifetime() {
			kept = append(kept, old)
		}
	}
	k.keys = kept
	keys := make([][32]byte, len(kept))
	for i, tk := range kept {
		keys[i] = tk.key
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
