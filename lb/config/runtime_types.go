package config

import "time"

// ServerStat is one server's state as the API's backend-stats list it.
type ServerStat struct {
	BackendID string `json:"backend_id"`
	IP        string `json:"ip"`
	// ServerState is "stopped" (down or in maintenance), "starting"
	// (going up), "running" or "stopping" (going down or draining).
	ServerState          string     `json:"server_state"`
	ServerStateChangedAt *time.Time `json:"server_state_changed_at"`
	// LastHealthCheckStatus is "unknown", "neutral" (no check ran),
	// "failed", "passed" or "condpass".
	LastHealthCheckStatus string `json:"last_health_check_status"`

	// Beyond the seed: the weight in effect, the runtime state, the open
	// sessions and the reason of the last failed check.
	Weight     int        `json:"weight"`
	AdminState AdminState `json:"admin_state"`
	Active     int64      `json:"active"`
	Reason     string     `json:"reason,omitempty"`
}

// ServerEvent is a change of a server's state, as subscribers are told.
type ServerEvent struct {
	Time        time.Time `json:"time"`
	LBID        string    `json:"lb_id"`
	BackendID   string    `json:"backend_id"`
	BackendName string    `json:"backend_name"`
	IP          string    `json:"ip"`
	// From and To are ServerStat.ServerState values.
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
}
