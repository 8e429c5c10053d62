package lb

// TrackedSessions reports how many open sessions of the named server a Pool
// with ShutdownOnDown would close if the server went down now, so that
// tests see synchronously what SetState did to them.
func (p *Pool) TrackedSessions(name string) int {
	p.mu.Lock()
	rt := p.state[name]
	p.mu.Unlock()
	if rt == nil {
		return -1
	}
	rt.sessions.mu.Lock()
	defer rt.sessions.mu.Unlock()
	return len(rt.sessions.m)
}
