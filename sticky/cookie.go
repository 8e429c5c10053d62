package sticky

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// Errors reported by Cookie.Validate and Cookie.SetKeys.
var (
	// ErrShortKey means a key's Secret has fewer than MinKeySize bytes.
	ErrShortKey = errors.New("sticky: key shorter than 16 bytes")
	// ErrDuplicateKey means two keys have the same Secret.
	ErrDuplicateKey = errors.New("sticky: duplicate key")
	// ErrCookieName means the cookie template is not a valid cookie.
	ErrCookieName = errors.New("sticky: invalid cookie")
)

const (
	// DefaultCookieName is the cookie's name when the template has none.
	DefaultCookieName = "LBSTICKY"
	// MinKeySize is the smallest accepted Key.Secret, in bytes. 32 random
	// bytes are recommended.
	MinKeySize = 16
	// tagSize is the length of the truncated HMAC-SHA256 a cookie carries:
	// 128 bits, beyond guessing.
	tagSize = 16
	// maxKnown bounds the table of cookie values of servers seen before,
	// which tells a moved session from a new one.
	maxKnown = 1 << 14
)

// Key is one secret of a Cookie's key ring.
type Key struct {
	// Secret signs and verifies cookie values: at least MinKeySize bytes,
	// best 32 random ones. Instances that must honour each other's cookies
	// share it.
	Secret []byte

	// NotAfter ends the grace period of a retired key: the cookies it
	// signed are honoured until then, and re-issued under the current key
	// when they are. Zero means no end. It is ignored on the first key,
	// which signs and is always honoured.
	NotAfter time.Time
}

// Cookie is cookie-based stickiness for HTTP (insert mode): an lb.Affinity
// and lb.ResponseAffinity for a Pool served by lb.ReverseProxy, over
// HTTP/1.1 and HTTP/2 alike.
//
// A request without a valid cookie is balanced normally and its response
// gets a Set-Cookie naming the chosen server; later requests carrying the
// cookie go to that server while it is pickable. The value is
// "<key id>.<tag>", where tag is a truncated HMAC-SHA256 of the cookie name
// and the server's Name under the current key: it reveals neither the
// server's address nor its name, and cannot be forged without the key. A
// value that matches no pickable server under a valid key (forged, signed
// by a foreign or expired key, naming a removed, down or draining server) is
// ignored: the request is balanced and the client re-pinned. A pinned server
// at its MaxConns is waited for, as the lb.Pool does for every pin (the
// queue rule), until the Pool's QueueTimeout.
//
// Since the value depends only on the key and the server's Name, several
// load-balancer instances that share the Keys and name their servers alike
// honour each other's cookies with no shared state.
//
// Rotation: put the new key first and keep the old one with a NotAfter; the
// old cookies keep working until then and are replaced as clients come
// back. With several instances, first add the new key second everywhere (it
// verifies), then move it first (it signs).
//
// Lookup costs one map access per request, without allocation: the values
// of every server under every key are computed once per snapshot of the
// pool. Use one Cookie per Pool. Configure the exported fields before first
// use; all methods are safe for concurrent use.
type Cookie struct {
	// Cookie is the template of the cookie set: Name (DefaultCookieName
	// when empty), Path ("/" when empty), Domain, Secure, HttpOnly,
	// SameSite, Partitioned and MaxAge (zero: a session cookie) are used as
	// given; Value and Expires are ignored. The cookie is set when a client
	// is pinned (or re-pinned, or its cookie re-signed), not on every
	// response, so MaxAge counts from the pin.
	Cookie http.Cookie

	// Keys is the key ring: the first key signs, the others only verify,
	// each until its NotAfter. Empty means a random key generated at first
	// use, which suits one instance whose clients may lose their pin on
	// restart; invalid keys (see Validate) are replaced the same way, with
	// an error logged. Change keys later with SetKeys.
	Keys []Key

	// MovedHeader, when set, names a response header set to "1" on the
	// response to a client whose pinned server could no longer be used (its
	// cookie was valid, the server down, draining, removed or failing), so
	// that the application can tell a moved session from a new one.
	MovedHeader string

	// OnMove, when set, is called when a client with a valid cookie is
	// re-pinned from server from to server to. It runs on the request's
	// goroutine before the response is written, and must not block.
	OnMove func(info lb.PickInfo, from, to string)

	// Logger receives configuration problems; nil means slog.Default().
	Logger *slog.Logger

	once  sync.Once
	ring  atomic.Pointer[keyRing]
	index snapIndex[cookieTable]

	mu    sync.Mutex
	known map[string]knownValue // cookie value → server, for move detection
}

type knownValue struct {
	server string
	ring   *keyRing
	key    int
}

// keyRing is a validated Keys list with each key's id and MAC.
type keyRing struct {
	gen  uint64
	keys []ringKey
}

type ringKey struct {
	id       string // base64url of a MAC of a constant: names the key in cookies
	secret   []byte
	notAfter time.Time
}

// cookieTable maps cookie values to the servers of one snapshot.
type cookieTable struct {
	ring    *keyRing
	byValue map[string]cookieEntry
	current map[*lb.Server]string // the value under the signing key
}

type cookieEntry struct {
	srv *lb.Server
	key int // index in ring.keys
}

var ringGen atomic.Uint64

// Validate reports what is wrong with the configuration: a short or
// duplicate key, or an invalid cookie template.
func (c *Cookie) Validate() error {
	if _, err := c.template(); err != nil {
		return err
	}
	_, err := newRing(c.Keys)
	return err
}

// SetKeys replaces the key ring, for rotation without restart; keys are as
// in the Keys field. On error nothing changes.
func (c *Cookie) SetKeys(keys []Key) error {
	c.init()
	r, err := newRing(keys)
	if err != nil {
		return err
	}
	if len(r.keys) == 0 {
		return fmt.Errorf("sticky: SetKeys: %w", ErrShortKey)
	}
	c.ring.Store(r)
	return nil
}

func newRing(keys []Key) (*keyRing, error) {
	r := &keyRing{gen: ringGen.Add(1)}
	for i, k := range keys {
		if len(k.Secret) < MinKeySize {
			return nil, fmt.Errorf("sticky: key %d: %w", i, ErrShortKey)
		}
		for _, o := range r.keys {
			if hmac.Equal(o.secret, k.Secret) {
				return nil, fmt.Errorf("sticky: key %d: %w", i, ErrDuplicateKey)
			}
		}
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("lbkit sticky key id"))
		id := base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:3])
		r.keys = append(r.keys, ringKey{id: id, secret: append([]byte(nil), k.Secret...), notAfter: k.NotAfter})
	}
	return r, nil
}

func (c *Cookie) init() {
	c.once.Do(func() {
		r, err := newRing(c.Keys)
		if err != nil || len(r.keys) == 0 {
			if err != nil {
				c.logger().LogAttrs(context.Background(), slog.LevelError,
					"sticky: invalid keys, using a random one", slog.Any("error", err))
			}
			secret := make([]byte, 32)
			rand.Read(secret) // never fails (crypto/rand)
			r, _ = newRing([]Key{{Secret: secret}})
		}
		c.ring.CompareAndSwap(nil, r) // SetKeys may have won
	})
}

// value returns the cookie value naming server under key k.
func (k *ringKey) value(cookieName, server string) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte("lbkit sticky\x00"))
	m.Write([]byte(cookieName))
	m.Write([]byte{0})
	m.Write([]byte(server))
	var sum [sha256.Size]byte
	tag := m.Sum(sum[:0])[:tagSize]
	return k.id + "." + base64.RawURLEncoding.EncodeToString(tag)
}

func (c *Cookie) name() string {
	if c.Cookie.Name == "" {
		return DefaultCookieName
	}
	return c.Cookie.Name
}

// table returns the value table for s, computing it once per snapshot.
func (c *Cookie) table(s *lb.Snapshot) (cookieTable, bool) {
	c.init()
	r := c.ring.Load()
	return c.index.get(s, r.gen, func(s *lb.Snapshot) cookieTable {
		return c.build(r, s)
	})
}

func (c *Cookie) build(r *keyRing, s *lb.Snapshot) cookieTable {
	t := cookieTable{
		ring:    r,
		byValue: make(map[string]cookieEntry, len(s.Servers)*len(r.keys)),
		current: make(map[*lb.Server]string, len(s.Servers)),
	}
	name := c.name()
	for _, sv := range s.Servers {
		for i := range r.keys {
			v := r.keys[i].value(name, sv.Name)
			t.byValue[v] = cookieEntry{srv: sv, key: i}
			if i == 0 {
				t.current[sv] = v
			}
		}
	}
	c.remember(r, t.byValue)
	return t
}

// remember records the server names of values, so that a later request
// whose server has gone is recognised as a moved session.
func (c *Cookie) remember(r *keyRing, values map[string]cookieEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil || len(c.known)+len(values) > maxKnown {
		c.known = make(map[string]knownValue, len(values))
	}
	for v, e := range values {
		c.known[v] = knownValue{server: e.srv.Name, ring: r, key: e.key}
	}
}

// honoured reports whether cookies signed by key i are still accepted.
func (r *keyRing) honoured(i int) bool {
	return i == 0 || r.keys[i].notAfter.IsZero() || time.Now().Before(r.keys[i].notAfter)
}

// Lookup returns the pickable server that the request's cookie names. It is
// part of lb.Affinity; L4 picks (no Request) are never pinned.
func (c *Cookie) Lookup(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, bool) {
	srv, pin := c.LookupPin(s, info)
	return srv, pin == lb.PinHonoured
}

// LookupPin is Lookup that also reports a valid cookie naming a server that
// cannot be used (down, draining, removed, or avoided after a failure) as
// lb.PinMoved, so that access logs show the move. A cookie that names no
// server this Cookie has seen under a key still honoured (forged, foreign,
// expired) is lb.PinNone. Part of lb.PinReporter.
func (c *Cookie) LookupPin(s *lb.Snapshot, info lb.PickInfo) (*lb.Server, lb.PinState) {
	if info.Request == nil {
		return nil, lb.PinNone
	}
	t, exact := c.table(s)
	var found *lb.Server
	valid := false // a valid cookie named a server not in s
	seen := false  // the request has a cookie of this name
	cookieValues(info.Request.Header, c.name(), func(v string) bool {
		seen = true
		e, ok := t.byValue[v]
		if !ok || !t.ring.honoured(e.key) {
			return false
		}
		if exact {
			found = e.srv
		} else {
			found = member(s, e.srv)
		}
		valid = valid || found == nil
		return found != nil
	})
	switch {
	case found != nil:
		return found, lb.PinHonoured
	case valid || seen && c.previous(info.Request.Header, c.name(), t.ring) != "":
		return nil, lb.PinMoved
	}
	return nil, lb.PinNone
}

// Pin is part of lb.Affinity. A cookie is pinned through the response, in
// PinResponse; Pin does nothing.
func (c *Cookie) Pin(lb.PickInfo, *lb.Server) {}

// PinResponse sets the cookie naming s on the response when the request was
// not sticky, or carried a value signed by a retired key. It is part of
// lb.ResponseAffinity, called by lb.ReverseProxy.
func (c *Cookie) PinResponse(h http.Header, info lb.PickInfo, s *lb.Server, sticky bool) {
	c.init()
	r := c.ring.Load()
	name := c.name()
	want := ""
	if cur := c.index.cur.Load(); cur != nil && cur.table.ring == r {
		want = cur.table.current[s]
	}
	if want == "" { // s is not in the cached snapshot (a newer one)
		want = r.keys[0].value(name, s.Name)
	}
	if sticky {
		// Re-issue cookies signed by a retired key.
		if info.Request == nil || cookieValues(info.Request.Header, name, func(v string) bool { return v == want }) {
			return
		}
	} else if info.Request != nil && (c.OnMove != nil || c.MovedHeader != "") {
		if from := c.previous(info.Request.Header, name, r); from != "" && from != s.Name {
			if c.MovedHeader != "" {
				h.Set(c.MovedHeader, "1")
			}
			if c.OnMove != nil {
				c.OnMove(info, from, s.Name)
			}
		}
	}
	ck, err := c.template()
	if err != nil {
		c.logger().LogAttrs(context.Background(), slog.LevelError, "sticky: cookie not set", slog.Any("error", err))
		return
	}
	ck.Value = want
	h.Add("Set-Cookie", ck.String())
}

// previous returns the name of the server a valid cookie of the request
// names, if that server was seen before.
func (c *Cookie) previous(h http.Header, name string, r *keyRing) string {
	from := ""
	c.mu.Lock()
	defer c.mu.Unlock()
	cookieValues(h, name, func(v string) bool {
		k, ok := c.known[v]
		if ok && k.ring == r && r.honoured(k.key) {
			from = k.server
		}
		return from != ""
	})
	return from
}

// template returns the cookie to set, without its value.
func (c *Cookie) template() (http.Cookie, error) {
	ck := http.Cookie{
		Name:        c.name(),
		Value:       "x",
		Path:        c.Cookie.Path,
		Domain:      c.Cookie.Domain,
		MaxAge:      c.Cookie.MaxAge,
		Secure:      c.Cookie.Secure,
		HttpOnly:    c.Cookie.HttpOnly,
		SameSite:    c.Cookie.SameSite,
		Partitioned: c.Cookie.Partitioned,
	}
	if ck.Path == "" {
		ck.Path = "/"
	}
	if err := ck.Valid(); err != nil {
		return ck, fmt.Errorf("%w: %w", ErrCookieName, err)
	}
	return ck, nil
}

func (c *Cookie) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

var (
	_ lb.Affinity         = (*Cookie)(nil)
	_ lb.ResponseAffinity = (*Cookie)(nil)
	_ lb.PinReporter      = (*Cookie)(nil)
)
