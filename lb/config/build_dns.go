package config

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/dnsservers"
)

// dnsRun is the DNS source that drives a backend's servers (lbkit.dns),
// running until cancel; done is closed when it has returned.
type dnsRun struct {
	key    string // dnsKey of the settings it runs with
	src    *dnsservers.Source
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the source and waits for it, so that no resolution lands in
// the pool afterwards.
func (d *dnsRun) stop() {
	d.cancel()
	<-d.done
}

// dnsOf returns the DNS settings of b, nil when its servers are its pool.
func dnsOf(b *Backend) *DNSServers {
	if b.Lbkit == nil {
		return nil
	}
	return b.Lbkit.DNS
}

// dnsKey renders what a DNS source of b is built from.
func dnsKey(b *Backend) string {
	j, _ := json.Marshal(struct {
		DNS      *DNSServers
		Port     int32
		MaxConns *int32
	}{dnsOf(b), b.ForwardPort, b.MaxConnections})
	return string(j)
}

// newDNSSource returns the dnsservers.Source of b's lbkit.dns.
func (rt *Runtime) newDNSSource(b *Backend) *dnsservers.Source {
	d := dnsOf(b)
	src := &dnsservers.Source{
		Name:   d.Name,
		SRV:    d.SRV,
		Server: d.Server,
		Logger: rt.logger.With("backend", b.ID),
	}
	if d.Interval != nil {
		src.Interval = d.Interval.D()
	}
	if !d.SRV {
		src.Port = int(cmp.Or(d.Port, b.ForwardPort))
	}
	if b.MaxConnections != nil {
		src.Template.MaxConns = int(*b.MaxConnections)
	}
	return src
}

// runDNS starts, restarts or stops the DNS source of be to match b, whose
// pool be runs. A source whose settings stay keeps running: the servers
// it resolved stay, with their state. Called from commit only, which
// serialises the changes of be.dns.
func (rt *Runtime) runDNS(be *backendRT, b *Backend) {
	be.mu.Lock()
	old := be.dns
	be.mu.Unlock()
	var d *dnsRun
	if dnsOf(b) != nil {
		key := dnsKey(b)
		if old != nil && old.key == key {
			return
		}
		ctx, cancel := context.WithCancel(be.ctx)
		d = &dnsRun{key: key, src: rt.newDNSSource(b), cancel: cancel, done: make(chan struct{})}
		defer rt.startDNS(be, d, ctx)
	}
	if old != nil {
		old.stop()
	}
	be.mu.Lock()
	be.dns = d
	be.mu.Unlock()
}

// startDNS runs d's source on be's pool until ctx is done.
func (rt *Runtime) startDNS(be *backendRT, d *dnsRun, ctx context.Context) {
	if d == nil {
		return
	}
	pool, logger := be.pool, rt.logger.With("backend", be.id)
	rt.wg.Go(func() {
		defer close(d.done)
		if err := d.src.Run(ctx, pool); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("servers from DNS stopped", "err", err)
		}
	})
}

// DNSStats reports the DNS resolutions of backend backendID, whose
// servers come from DNS; false when it has none.
func (rt *Runtime) DNSStats(backendID string) (dnsservers.Stats, bool) {
	rt.mu.RLock()
	be := rt.backends[backendID]
	rt.mu.RUnlock()
	if be == nil {
		return dnsservers.Stats{}, false
	}
	be.mu.Lock()
	d := be.dns
	be.mu.Unlock()
	if d == nil {
		return dnsservers.Stats{}, false
	}
	return d.src.Stats(), true
}

// dnsServers returns the servers of pool, which a DNS source filled, with
// the per-server limit of b.
func dnsServers(pool *lb.Pool, b *Backend) []lb.Server {
	var out []lb.Server
	for _, st := range pool.Stats().Servers {
		if st.Removed {
			continue
		}
		s := lb.Server{Name: st.Name, Addr: st.Addr, Weight: st.Weight, Backup: st.Backup}
		if b.MaxConnections != nil {
			s.MaxConns = int(*b.MaxConnections)
		}
		out = append(out, s)
	}
	return out
}
