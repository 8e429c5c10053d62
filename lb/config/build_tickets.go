package config

import (
	"context"

	"github.com/lbkit/lbkit/tlsmode"
)

// derivedTickets are the session-ticket keys of one secret, rotated by
// their own goroutine until cancel.
type derivedTickets struct {
	keys   *tlsmode.TicketKeys
	cancel context.CancelFunc
}

// ticketSecret is the session-ticket secret doc runs with: its own, else
// RuntimeOptions.Secrets'; empty for random keys.
func (rt *Runtime) ticketSecret(doc *Document) string {
	if s := doc.Secrets.SessionTicketSecret; s != "" {
		return s
	}
	return rt.opts.Secrets.SessionTicketSecret
}

// ticketsFor returns the session-ticket keys of secret: derived from it
// per period with tlsmode.TicketKeys (HKDF, rotated daily, each key kept
// seven days), so that every Runtime given the same secret seals and opens
// the same tickets; random keys of this Runtime when secret is empty. The
// keys of a secret are made once and rotate until pruneTickets drops
// them. A secret shorter than tlsmode.MinTicketSecret (document
// validation refuses it, but RuntimeOptions.Secrets is not a document)
// makes keys that refuse to register: tlsConfig reports it.
func (rt *Runtime) ticketsFor(secret string) *tlsmode.TicketKeys {
	if secret == "" {
		return rt.tickets
	}
	rt.ticketMu.Lock()
	defer rt.ticketMu.Unlock()
	if d := rt.derived[secret]; d != nil {
		return d.keys
	}
	k := &tlsmode.TicketKeys{Secret: []byte(secret)}
	ctx, cancel := context.WithCancel(rt.ctx)
	rt.derived[secret] = &derivedTickets{keys: k, cancel: cancel}
	rt.wg.Go(func() { k.Run(ctx) })
	return k
}

// pruneTickets stops rotating the keys of every secret but keep, the one
// now running. Servers still draining with older keys keep them, without
// rotation, for the short time they have left.
func (rt *Runtime) pruneTickets(keep string) {
	rt.ticketMu.Lock()
	defer rt.ticketMu.Unlock()
	for s, d := range rt.derived {
		if s != keep {
			d.cancel()
			delete(rt.derived, s)
		}
	}
}
