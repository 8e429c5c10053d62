package lb

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lbkit/lbkit/internal/hostname"
)

// Mux routes connections by the server name (SNI) the client asked for, as
// found in ConnInfo.SNI by a tlsmode adapter that peeked or terminated the
// TLS handshake. Routes are exact names ("db.example.com") or wildcards
// ("*.example.com", matching any name below example.com, at any depth), in
// ASCII (internationalised names in their xn-- form); an
// exact route beats a wildcard, and a longer wildcard beats a shorter one.
// Names compare case-insensitively. Connections that match no route go to
// Default, or are closed when Default is nil.
//
// Handle may be called while the Mux serves: routes are replaced
// copy-on-write, and lookups take no lock.
type Mux struct {
	// Default serves connections that match no route.
	Default Backend

	mu     sync.Mutex
	routes atomic.Pointer[muxRoutes]
}

type muxRoutes struct {
	exact map[string]Backend
	wild  map[string]Backend // keyed by the suffix after "*."
}

// Handle routes the server name pattern to b, replacing any route with the
// same pattern.
func (m *Mux) Handle(pattern string, b Backend) error {
	if b == nil {
		return fmt.Errorf("lb: mux route %q: nil backend", pattern)
	}
	name, wild, err := parseNamePattern(pattern)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.routes.Load()
	next := &muxRoutes{exact: map[string]Backend{}, wild: map[string]Backend{}}
	if old != nil {
		for k, v := range old.exact {
			next.exact[k] = v
		}
		for k, v := range old.wild {
			next.wild[k] = v
		}
	}
	if wild {
		next.wild[name] = b
	} else {
		next.exact[name] = b
	}
	m.routes.Store(next)
	return nil
}

// parseNamePattern validates a host name pattern and returns it normalised,
// with its "*." prefix removed when wild. Names are ASCII (internationalised
// names in their xn-- form): labels of 1 to 63 letters, digits, hyphens or
// underscores, 253 bytes at most.
func parseNamePattern(pattern string) (name string, wild bool, err error) {
	name = strings.TrimSuffix(pattern, ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, wild = rest, true
	}
	if !hostname.Valid(name) {
		return "", false, fmt.Errorf("lb: invalid host name pattern %q", pattern)
	}
	return asciiLower(name), wild, nil
}

// asciiLower lowercases ASCII letters only, without allocating when there
// are none: unlike strings.ToLower it never rewrites other bytes.
func asciiLower(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Match returns the Backend for the server name sni, or Default.
func (m *Mux) Match(sni string) Backend {
	if r := m.routes.Load(); r != nil && sni != "" {
		if b := r.match(sni); b != nil {
			return b
		}
	}
	return m.Default
}

func (r *muxRoutes) match(name string) Backend {
	name = asciiLower(strings.TrimSuffix(name, "."))
	if b, ok := r.exact[name]; ok {
		return b
	}
	if len(r.wild) == 0 {
		return nil
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if b, ok := r.wild[name[i+1:]]; ok {
				return b
			}
		}
	}
	return nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// ServeConn hands c to the Backend its SNI routes to.
func (m *Mux) ServeConn(ctx context.Context, c *Conn) {
	if b := m.Match(c.Info.SNI); b != nil {
		b.ServeConn(ctx, c)
		return
	}
	c.Close()
}

// Switch holds a Backend that can be replaced atomically while traffic
// flows: each new connection is served by the Backend stored when it
// arrived, and connections already being served finish on the old one. It
// is how a whole chain (ACLs, TLS mode, routes, pools) is reloaded.
type Switch struct{ v atomic.Pointer[backendBox] }

type backendBox struct{ b Backend }

// NewSwitch returns a Switch holding b.
func NewSwitch(b Backend) *Switch {
	s := new(Switch)
	s.Store(b)
	return s
}

// Store makes b serve new connections. A nil b closes them.
func (s *Switch) Store(b Backend) { s.v.Store(&backendBox{b}) }

// Load returns the current Backend.
func (s *Switch) Load() Backend {
	if box := s.v.Load(); box != nil {
		return box.b
	}
	return nil
}

// ServeConn serves c with the current Backend.
func (s *Switch) ServeConn(ctx context.Context, c *Conn) {
	if b := s.Load(); b != nil {
		b.ServeConn(ctx, c)
		return
	}
	c.Close()
}

// HandlerSwitch is Switch for HTTP: an http.Handler replaceable atomically;
// each request is served by the handler stored when it arrived.
type HandlerSwitch struct{ v atomic.Pointer[handlerBox] }

type handlerBox struct{ h http.Handler }

// NewHandlerSwitch returns a HandlerSwitch holding h.
func NewHandlerSwitch(h http.Handler) *HandlerSwitch {
	s := new(HandlerSwitch)
	s.Store(h)
	return s
}

// Store makes h serve new requests. A nil h answers 503.
func (s *HandlerSwitch) Store(h http.Handler) { s.v.Store(&handlerBox{h}) }

// Load returns the current handler.
func (s *HandlerSwitch) Load() http.Handler {
	if box := s.v.Load(); box != nil {
		return box.h
	}
	return nil
}

// ServeHTTP serves r with the current handler.
func (s *HandlerSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no handler", http.StatusServiceUnavailable)
}
