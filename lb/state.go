package lb

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// SetState records the state of the named server and a reason for it. Host
// programs use it to put a server in or out of maintenance; it overrides
// what health checks said, until their next verdict. It reports false when
// no server has that name.
func (p *Pool) SetState(name string, st State, reason string) bool {
	return p.setState(name, st, reason, false)
}

// SetHealth records a health check verdict for the named server, like
// SetState, but leaves a server in StateMaintenance alone: maintenance is
// the host's decision, and only SetState ends it. Part of ServerSet.
func (p *Pool) SetHealth(name string, st State, reason string) bool {
	return p.setState(name, st, reason, true)
}

// setState is SetState; with health set, a server in StateMaintenance keeps
// its state (SetHealth).
func (p *Pool) setState(name string, st State, reason string, health bool) bool {
	var shutdown []func()
	defer func() { // after the unlock below: closing sessions ends leases
		for _, stop := range shutdown {
			stop()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := p.state[name]
	if rt == nil || rt.removed {
		return false
	}
	if health && rt.state == StateMaintenance {
		return true
	}
	if st == StateDown && rt.state != StateDown && p.ShutdownOnDown {
		shutdown = rt.sessions.take()
	}
	if rt.state == st && rt.reason == reason {
		return true
	}
	was := rt.state
	if was != st {
		now := time.Now()
		if was == StateDown {
			rt.health.downtime += now.Sub(rt.since)
		}
		if st == StateDown {
			rt.health.downs++
		}
		rt.since = now
	}
	rt.state, rt.reason = st, reason
	if was.Pickable() != st.Pickable() {
		p.publishLocked(false)
	}
	if was != st {
		p.logger().LogAttrs(context.Background(), slog.LevelInfo, "server state",
			slog.String("pool", p.Name), slog.String("server", name),
			slog.String("from", was.String()), slog.String("to", st.String()),
			slog.String("reason", reason))
	}
	return true
}

// Drain stops sending new traffic to the named server and waits until its
// last connection or request has ended, or ctx is done. The server stays
// draining (in Status, and out of snapshots) until Undrain or an Update that
// re-adds it after its removal.
func (p *Pool) Drain(ctx context.Context, name string) error {
	p.mu.Lock()
	rt := p.state[name]
	if rt == nil {
		p.mu.Unlock()
		return fmt.Errorf("lb: drain %q: no such server", name)
	}
	if !rt.draining.Swap(true) {
		p.publishLocked(false)
	}
	p.mu.Unlock()
	return p.waitIdle(ctx, rt)
}

// Undrain makes a drained server pickable again (if its health allows).
func (p *Pool) Undrain(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := p.state[name]
	if rt == nil || rt.removed {
		return false
	}
	if rt.draining.Swap(false) {
		p.publishLocked(false)
	}
	return true
}

func (p *Pool) waitIdle(ctx context.Context, rt *serverRuntime) error {
	p.queued.Add(1)
	defer p.queued.Add(-1)
	for {
		p.mu.Lock()
		ch := p.freedLocked()
		p.mu.Unlock()
		if rt.active.Load() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("lb: drain: %w", context.Cause(ctx))
		}
	}
}
