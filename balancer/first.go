package balancer

import "github.com/lbkit/lbkit/lb"

// First sends each pick to the first server, in configuration order, that is
// below its MaxConns; later servers take the overflow. When every server is
// full it returns the first one, and the Pool queues the work until a slot
// frees. Servers without MaxConns are never full, so the first of them takes
// everything that reaches it.
//
// It suits fleets that scale down when idle: traffic concentrates on as few
// servers as possible. Weights are ignored. Pick is an O(n) scan that stops
// at the first server with room.
//
// First has no state; the zero value is ready to use and safe for
// concurrent use.
type First struct{}

// Pick returns the first server with room, or the first server.
func (First) Pick(s *lb.Snapshot, _ lb.PickInfo) (*lb.Server, error) {
	for _, sv := range s.Servers {
		if !sv.Full() {
			return sv, nil
		}
	}
	return s.Servers[0], nil
}
